"""The approval prompt in colour on a terminal (the headline, the keys, the answers given), plain
when the CLI passes no painter; and the answer records where it came from (issue 17)."""

from __future__ import annotations

import io
import os

from firewall.approvals import store
from firewall.approvals.prompt import Prompt, screen
from firewall.cli import colour
from tests.approvals.support import NOW, held

ME = os.getpid()
COLOUR_CODE = "\x1b[3"  # the start of every foreground colour code; CLEAR (\x1b[H\x1b[2J) is not one


class Keys:
    """Press each key in turn, then q."""

    def __init__(self, *keys: str) -> None:
        self.keys = [*keys, "q"]

    def read(self, timeout: float) -> str | None:
        return self.keys.pop(0)

    def discard(self) -> None:
        pass


def test_the_painted_screen_colours_the_headline_keys_and_answers(db):
    row = store.record_pending(db, held(), NOW, ME)
    plain = screen([row], NOW, 300.0, ["approved apr_x POST https://api.example.com/v1/files", "denied apr_y GET x"])
    painted = colour.prompt_screen(plain)
    assert colour.paint("[a]", "green") in painted and colour.paint("[g]", "green") in painted
    assert colour.paint("[d]", "red") in painted and "[q] quit" in painted  # quitting stays plain
    assert colour.paint("Approval needed: request 1 of 1", "yellow") in painted
    assert "  " + colour.paint("approved", "green") + " apr_x" in painted
    assert "  " + colour.paint("denied", "red") + " apr_y" in painted
    assert COLOUR_CODE not in plain  # the control: the screen itself has no codes
    assert _strip(painted) == plain  # the same text, only coloured


def test_a_url_with_a_key_in_brackets_is_not_coloured():
    line = "  request  POST https://api.example.com/x[a]y"
    assert colour.prompt_screen(line) == line


def test_the_prompt_paints_only_when_given_a_painter_and_records_where_it_answered(db_path, db):
    store.record_pending(db, held(), NOW, ME)
    out = io.StringIO()
    Prompt(
        db_path,
        grant_for=300,
        user="alice",
        out=out,
        keys=Keys("a"),
        clock=lambda: NOW,
        width=lambda: 100,
        via="prompt on pts/7",
        paint=colour.prompt_screen,
    ).run()
    assert COLOUR_CODE in out.getvalue()
    (answered,) = store.recent(db, 5)
    assert (answered.state, answered.decided_by, answered.decided_via) == ("approved", "alice", "prompt on pts/7")

    store.record_pending(db, held(request_id="req_2", fingerprint="e" * 64), NOW, ME)
    plain = io.StringIO()
    Prompt(db_path, grant_for=300, user="alice", out=plain, keys=Keys(), clock=lambda: NOW, width=lambda: 100).run()
    assert "Approval needed" in plain.getvalue() and COLOUR_CODE not in plain.getvalue()  # the control


def _strip(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
