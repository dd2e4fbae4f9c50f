"""`firewall run`'s "is waiting for approval" hint fits the terminal (issue 17): at 80 columns a long
URL is shortened in the middle (the host and the end of the path stay) and the line breaks at
spaces; the approval id and the command a person types are never cut. Controls: a short URL stays
whole, a wide terminal gets the one line it always got, and a pipe gets every character."""

from __future__ import annotations

import fcntl
import io
import os
import struct
import termios
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from firewall.approvals import store
from firewall.run.waiting_hint import ANSWER, WaitingHint, hint_lines
from firewall.state.db import open_database
from tests.approvals.support import NOW, held

ME = os.getpid()
LONG_HOST = "inference-gateway.eu-west-1.internal-ml-platform.example.com"
LONG_PATH = "/v1/projects/quarterly-forecasting/fine_tuning/jobs/ftjob-2026-12-07-nightly-run"
LONG = held(url=f"https://{LONG_HOST}{LONG_PATH}")
SHORT = held(url="https://api.openai.com/v1/files")


def one_line(row) -> str:
    return (
        f"firewall: agent {row.agent} is waiting for approval of {row.method} {row.url} ({row.id}); "
        "answer it with `firewall approvals` in another terminal"
    )


def terminal(columns: int) -> tuple[int, io.TextIOWrapper]:
    """A pseudo-terminal `columns` wide: (the reading end, the writing end as a text stream)."""
    reader, writer = os.openpty()
    fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    attrs = termios.tcgetattr(writer)
    attrs[1] &= ~termios.OPOST  # no \r added: read back what was written
    termios.tcsetattr(writer, termios.TCSANOW, attrs)
    return reader, open(writer, "w", encoding="utf-8", closefd=True)  # noqa: SIM115  (closed by the test)


def told(db_path, row_held, columns: int) -> str:
    """What a real WaitingHint writes on a terminal `columns` wide for one pending request."""
    reader, out = terminal(columns)
    try:
        with WaitingHint(db_path, "ci", 0.0, out=out, interval=0.05):
            with opened(db_path) as db:
                store.record_pending(db, row_held, time.time(), ME)
            deadline = time.monotonic() + 10
            text = b""
            while not text.rstrip().endswith(b"terminal"):  # the hint's last word, on whichever line
                assert time.monotonic() < deadline, text
                os.set_blocking(reader, False)
                try:
                    text += os.read(reader, 4096)
                except BlockingIOError:
                    time.sleep(0.05)
        return text.decode()
    finally:
        out.close()
        os.close(reader)


@contextmanager
def opened(db_path):
    db = open_database(db_path)
    try:
        yield db
    finally:
        db.close()


def pending_row(db_path):
    with opened(db_path) as db:
        return store.pending(db)[0]


@pytest.fixture(autouse=True)
def no_columns(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # the terminal's own width decides


def test_at_80_columns_a_long_url_is_shortened_and_nothing_a_person_needs_is_cut(db_path):
    text = told(db_path, LONG, 80)
    lines = text.splitlines()
    assert len(lines) > 1 and max(len(line) for line in lines) <= 80, text
    approval_id = pending_row(db_path).id
    assert f"({approval_id});" in text  # the id whole
    assert any(ANSWER in line for line in lines), text  # the command on one line
    url = next(word for word in text.split() if word.startswith("https://"))
    assert "…" in url and url.startswith(f"https://{LONG_HOST[:20]}") and url.endswith(LONG_PATH[-10:])
    assert all(line.startswith("  ") for line in lines[1:])  # continuations indented under the first


def test_at_80_columns_a_short_url_is_kept_whole(db_path):
    text = told(db_path, SHORT, 80)
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert " https://api.openai.com/v1/files " in " ".join(text.split()) and "…" not in text


def test_a_wide_terminal_gets_the_one_line_it_always_got(db_path):
    text = told(db_path, SHORT, 200)
    row = pending_row(db_path)
    assert text == one_line(row) + "\n"


def test_piped_every_character_is_kept_on_one_line(db):
    row = store.record_pending(db, LONG, NOW, ME)
    out = io.StringIO()
    WaitingHint(Path("unused.db"), "ci", NOW, out=out)._tell([row])  # a pipe: no width
    assert out.getvalue() == one_line(row) + "\n"


@pytest.mark.parametrize("columns", [60, 80, 100, 120])
def test_lines_fit_and_words_survive_at_any_width(db, columns):
    row = store.record_pending(db, replace(LONG, agent="nightly-evaluation-agent"), NOW, ME)
    lines = hint_lines(row, columns)
    assert max(len(line) for line in lines) <= columns
    whole = " ".join(hint_lines(row, None)[0].split())
    shown = " ".join(" ".join(lines).split())
    assert shown.replace(next(w for w in shown.split() if "…" in w), "URL") == whole.replace(row.url, "URL")
