"""The audit table and `audit tail` on a terminal: decisions in colour (let through green, refused
red, held for a person yellow, over a limit magenta), no colour with NO_COLOR or TERM=dumb, and
piped output byte for byte as before; `audit tail` fits the terminal's width (issue 17)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from firewall.audit import render
from firewall.audit.query import AuditFilter, newest
from firewall.audit.writer import AuditWriter
from firewall.state.db import open_database
from tests.audit.support import make_record
from tests.audit.terminal import FIREWALL, Terminal, cli_env, run_on_terminal

CODE = re.compile(r"\x1b\[[0-9;]*m")
GREEN, RED, YELLOW, MAGENTA = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[35m"
LONG_PATH = "/v1/organizations/org-0123456789/projects/proj-abcdef/fine_tuning/jobs/ftjob-XYZ/checkpoints"
DECISIONS = ("allow", "block", "approve", "limit", "approval_denied")


@pytest.fixture
def logged(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    with AuditWriter(home / "firewall.db") as writer:
        for i, decision in enumerate(DECISIONS):
            writer.submit(make_record(i, decision=decision, path=LONG_PATH if i == 0 else "/v1/items"))
    return home


def test_the_table_on_a_terminal_colours_each_decision(logged):
    text = run_on_terminal(cli_env(logged), "audit", columns=200)
    assert GREEN + "allow\x1b[0m" in text
    assert RED + "block\x1b[0m" in text and RED + "approval_denied\x1b[0m" in text
    assert YELLOW + "approve\x1b[0m" in text
    assert MAGENTA + "limit\x1b[0m" in text
    lines = CODE.sub("", text).splitlines()
    assert lines[0].startswith("SEQ") and CODE.search(text.splitlines()[0]) is None  # the header stays plain
    assert max(len(line) for line in lines) <= 200  # colour codes never count toward the width


@pytest.mark.parametrize("variable", [{"NO_COLOR": "1"}, {"TERM": "dumb"}])
def test_no_colour_when_the_user_or_terminal_says_so(logged, variable):
    text = run_on_terminal(cli_env(logged, **variable), "audit", columns=200)
    assert "allow" in text and "\x1b[" not in text


def test_a_piped_table_is_byte_for_byte_the_plain_table(logged):
    """The control: a pipe gets no codes, and exactly the table render.table makes."""
    piped = subprocess.run([FIREWALL, "audit"], env=cli_env(logged), capture_output=True, timeout=60)
    db = open_database(logged / "firewall.db")
    try:
        rows = newest(db, AuditFilter(), 50)
    finally:
        db.conn.close()
    assert piped.stdout == ("\n".join(render.table(rows)) + "\n").encode()


def _write_after_header(home: Path, terminal: Terminal) -> str:
    terminal.read_until(lambda text: "SEQ" in text)
    with AuditWriter(home / "firewall.db") as writer:
        writer.submit(make_record(10, decision="block", path=LONG_PATH, query=""))
        writer.submit(make_record(11, decision="allow", reason="a reason long enough to need the rest of the line"))
    return terminal.read_until(lambda text: len(text.splitlines()) >= 3 and text.endswith("\n"))


@pytest.mark.parametrize("columns", [80, 120])
def test_tail_fits_the_terminal_and_colours_its_decisions(logged, columns):
    terminal = Terminal(cli_env(logged), "audit", "tail", "--count", "2", columns=columns)
    try:
        text = _write_after_header(logged, terminal)
    finally:
        terminal.close()
    lines = CODE.sub("", text).splitlines()
    assert len(lines) == 3, text
    assert max(len(line) for line in lines) <= columns, "\n".join(lines)
    assert RED + "block\x1b[0m" in text and GREEN + "allow\x1b[0m" in text
    url = next(cell for cell in lines[1].split() if cell.startswith("https://"))
    assert url.startswith("https://api.example") and url.endswith("points")  # shortened in the middle


def test_a_piped_tail_keeps_its_fixed_columns(logged):
    """The control: piped, `tail` prints the fixed-width lines it always printed."""
    process = subprocess.Popen(
        [FIREWALL, "audit", "tail", "--count", "1"], env=cli_env(logged), stdout=subprocess.PIPE, text=True
    )
    try:
        header = process.stdout.readline()
        with AuditWriter(logged / "firewall.db") as writer:
            writer.submit(make_record(10, decision="block", path=LONG_PATH))
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert header == render.align([render.TABLE_HEADER], render.TAIL_WIDTHS)[0] + "\n"
    assert "\x1b[" not in out and ("https://api.example.com" + LONG_PATH)[:79] + "…" in out
