"""The approval prompt fits the terminal: lines break at spaces, never inside a word, and the
continuation of a field starts under its value (issue 17: "the approval prompt breaks words at 80
columns")."""

from __future__ import annotations

import io
import os

import pytest

from firewall.approvals import store
from firewall.approvals.prompt import Prompt, screen
from firewall.approvals.render import choices_lines, wrap_line
from tests.approvals.support import NOW, held

ME = os.getpid()  # a live proxy pid: the prompt expires requests of dead proxies
LONG = held(
    agent="nightly-evaluation-agent",
    url="https://api.example.com/v1/fine_tuning/jobs?suffix=support-2026-12",  # fits a line, not with its label
    rule="policies/openai-production.policy:27",
    rule_text='approve POST /v1/fine_tuning/** reason "fine-tuning is billed per token and needs a person to look"',
    reason="fine-tuning is billed per token and needs a person to look at the training file first",
    preview='{"model": "gpt-4o-mini", "training_file": "file-abc", "hyperparameters": {"n_epochs": 3}} (97 bytes)',
)


def words(text: str) -> list[str]:
    return text.split()


def test_the_screen_at_80_columns_breaks_lines_at_spaces_only(db):
    row = store.record_pending(db, LONG, NOW, ME)
    other = store.record_pending(db, held(request_id="req_2", fingerprint="e" * 64), NOW, ME)
    wide = screen([row, other], NOW, 300.0, ["approved apr_x POST https://api.example.com/v1/files for ci"], 500)
    narrow = screen([row, other], NOW, 300.0, ["approved apr_x POST https://api.example.com/v1/files for ci"], 80)
    assert max(len(line) for line in wide.splitlines()) > 80  # the control: this screen needs wrapping
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert words(narrow) == words(wide)  # same words in the same order: none was cut in two
    lines = narrow.splitlines()
    reason = next(i for i, line in enumerate(lines) if line.startswith("  reason   "))
    assert lines[reason + 1].startswith(" " * 11) and not lines[reason + 1].startswith(" " * 12)  # under the value
    # the key choices break between choices, never inside one
    assert any(line.strip() == "[d] deny   [q] quit" for line in lines) or any(
        line.rstrip().endswith("[d] deny   [q] quit") for line in lines
    )
    assert "[a] allow once" in narrow


def test_a_word_wider_than_the_line_is_cut_at_the_edge_and_nothing_is_lost():
    url = "https://api.example.com/" + "x" * 120
    pieces = wrap_line(f"  request  POST {url}", 80)
    assert all(len(piece) <= 80 for piece in pieces)
    assert url in "".join(piece.strip() for piece in pieces)


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_choices_fit_and_break_between_choices(width):
    choices = ["[a] allow once", "[g] allow rule test.policy:4 for agent ci for 5m00s", "[d] deny", "[q] quit"]
    lines = choices_lines(choices, width)
    assert all(len(line) <= width for line in lines)
    assert words(" ".join(lines)) == words(" ".join(choices))
    for choice in choices:
        if len(choice) + 2 <= width:
            assert any(choice in line for line in lines), (choice, lines)  # whole, on one line
        else:  # wider than a line: continued under its text, on lines of its own
            start = next(i for i, line in enumerate(lines) if choice[:3] in line)
            assert lines[start + 1].startswith("      ") and "[" not in lines[start + 1]


class QuitAtOnce:
    def read(self, timeout: float) -> str | None:
        return "q"

    def discard(self) -> None:
        pass


def test_the_prompt_draws_at_the_terminals_width(db_path, db):
    store.record_pending(db, LONG, NOW, ME)
    out = io.StringIO()
    Prompt(db_path, grant_for=300, user="me", out=out, keys=QuitAtOnce(), clock=lambda: NOW, width=lambda: 80).run()
    drawn = out.getvalue().split("\x1b[2J", 1)[1]
    assert "Approval needed" in drawn
    assert max(len(line) for line in drawn.splitlines()) <= 80
