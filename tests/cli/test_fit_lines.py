"""Result lines fitted to a width (firewall/cli/fit_lines.py): the URL gives up room first, then the
file's path (its end and line number stay), then the end of the text; nothing changes without a
width or when the line fits (the controls)."""

from __future__ import annotations

import pytest

from firewall.cli.fit_lines import fit, wrapped

URL = "https://inference-gateway.eu-west-1.internal-ml-platform.example.com/v1/projects/forecasting/jobs/ft-1"
TEXT = f"expect allow GET {URL}"
WHERE = "/home/someone/teams/machine-learning-platform/egress/production/gateway.policy:12"


def test_without_a_width_or_when_it_fits_nothing_changes():
    assert fit(8, WHERE, TEXT, None) == (WHERE, TEXT)
    assert fit(8, "p.policy:7", "expect allow GET https://api.example.com/v1/models", 80) == (
        "p.policy:7",
        "expect allow GET https://api.example.com/v1/models",
    )


def test_the_url_gives_up_room_first_in_the_middle():
    room = 8 + len(WHERE) + len(TEXT) - 20
    where, text = fit(8, WHERE, TEXT, room)
    assert where == WHERE and len(text) == len(TEXT) - 20
    url = text.split()[-1]
    assert "…" in url and url.startswith("https://inference-gateway") and url.endswith("/ft-1")


@pytest.mark.parametrize("width", [60, 80, 100])
def test_then_the_path_keeping_its_file_and_line(width):
    where, text = fit(8, WHERE, TEXT, width)
    assert 8 + len(where) + len(text) <= width
    assert where.startswith("…") and where.endswith("gateway.policy:12")
    assert text.startswith("expect allow GET https://")  # the verb and method stay


def test_a_line_of_prose_breaks_at_spaces_under_its_indent():
    line = "      expected block, got allow (rule, /a/very/long/folder/of/policies/for/the/team/openai.policy:3)"
    pieces = wrapped(line, 60, "        ")
    assert len(pieces) > 1 and all(len(piece) <= 60 for piece in pieces)
    assert pieces[0].startswith("      expected") and all(p.startswith("        ") for p in pieces[1:])
    assert " ".join(pieces).split()[:5] == line.split()[:5]  # the prose whole
    assert "…" in pieces[-1] and pieces[-1].endswith("openai.policy:3)")  # a path wider than a line: shortened
    assert wrapped(line, None, "  ") == [line]
    fits = wrapped(line, 72, "        ")  # the control: wide enough for the path, nothing shortened
    assert " ".join(" ".join(fits).split()) == " ".join(line.split())
