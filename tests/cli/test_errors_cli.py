"""Faults at the edges reach the user as one line (what, where, the fix), never as a traceback.

Each fault is made for real: a read-only file system (a tmpfs remounted read-only, or a folder
without write permission when not root), a database with damaged pages, a file size limit
(RLIMIT_FSIZE, what a full disk looks like to a writer). Each has a benign control.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fixtures import Firewall, make_firewall

POLICY = "host example.com {\n    allow GET /\n}\n"


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The result's stderr, checked to be an error of one line with no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def damage_table(database: Path, table: str) -> None:
    """Overwrite the pages of `table` and its indexes with bytes SQLite cannot read."""
    db = sqlite3.connect(database)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = db.execute("PRAGMA page_size").fetchone()[0]
    roots = [
        r for (r,) in db.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name = ? AND rootpage > 0", [table])
    ]
    db.close()
    with database.open("r+b") as handle:
        for root in roots:
            handle.seek((root - 1) * page)
            handle.write(b"\xff" * page)


@pytest.fixture
def fw(tmp_path: Path) -> Firewall:
    firewall = make_firewall(tmp_path / "home")
    firewall.run("init", check=True)
    firewall.run("approvals", "list", check=True)  # the database and its tables exist
    return firewall


def test_a_damaged_database_is_one_line_saying_how_to_recover(fw: Firewall) -> None:
    control = fw.run("approvals", "list")
    assert control.returncode == 0 and "Traceback" not in control.stderr
    damage_table(fw.home / "firewall.db", "approvals")
    result = fw.run("approvals", "list")
    assert result.returncode == 1
    line = one_line_error(result)
    assert str(fw.home / "firewall.db") in line and "damaged" in line and ".recover" in line
    logged = (fw.home / "cli.log").read_text()
    assert "Traceback" in logged and "DatabaseError" in logged  # the details are kept, in the log


def test_audit_verify_checks_the_whole_database_file(fw: Firewall) -> None:
    control = fw.run("audit", "verify")
    assert control.returncode == 0, control.stdout + control.stderr
    damage_table(fw.home / "firewall.db", "approvals")  # not an audit row: the hash chain stays intact
    result = fw.run("audit", "verify")
    assert result.returncode == 1, result.stdout
    assert "malformed" in result.stdout and ".recover" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.fixture
def read_only_home(tmp_path: Path) -> Iterator[Path]:
    """A state folder that cannot be written: a read-only tmpfs as root, a folder without w otherwise."""
    mount = tmp_path / "ro"
    mount.mkdir()
    root = os.geteuid() == 0 and shutil.which("mount") is not None
    if root and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)]).returncode != 0:
        root = False
    try:
        make_firewall(mount / "home").run("init", check=True)
        if root:
            subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        else:
            for folder in (mount / "home" / "run", mount / "home"):
                folder.chmod(0o500)
        yield mount / "home"
    finally:
        if root:
            subprocess.run(["umount", str(mount)], check=False)
        else:
            for folder in (mount / "home", mount / "home" / "run"):
                folder.chmod(0o700)


@pytest.mark.parametrize("foreground", [False, True], ids=["background", "foreground"])
def test_proxy_start_on_a_read_only_state_folder(read_only_home: Path, foreground: bool) -> None:
    args = ["proxy", "start", "--port", "0", *(["--foreground"] if foreground else [])]
    result = make_firewall(read_only_home).run(*args, timeout=60)
    assert result.returncode == 1
    line = one_line_error(result)
    assert str(read_only_home) in line
    assert "read-only" in line or "permission denied" in line
    assert "FIREWALL_HOME" in line  # the fix


def _file_size_limit(size: int):
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def run_limited(fw: Firewall, size: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "firewall", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=fw.env,
        preexec_fn=_file_size_limit(size),
    )


def test_run_when_files_cannot_grow_is_one_line(fw: Firewall) -> None:
    policy = fw.write_policy("p.policy", POLICY)
    args = ("run", "--no-isolate", "--policy", str(policy), "--", "true")
    control = run_limited(fw, 1 << 30, *args)
    assert control.returncode == 0, control.stderr
    result = run_limited(fw, 150, *args)
    assert result.returncode == 1
    line = one_line_error(result)
    assert str(fw.home) in line and ("space" in line or "size limit" in line)


@pytest.mark.parametrize(
    ("command", "code"),
    [(["nosuchcmd-af17"], 127), (["./no/such/file"], 127), (["{notexec}"], 126), (["{folder}"], 126)],
    ids=["not-in-path", "no-such-path", "not-executable", "a-folder"],
)
def test_run_a_command_that_cannot_start_exits_as_a_shell_does(
    fw: Firewall, tmp_path: Path, command: list[str], code: int
) -> None:
    notexec = tmp_path / "script.sh"
    notexec.write_text("#!/bin/sh\n")
    command = [part.format(notexec=notexec, folder=tmp_path) for part in command]
    result = fw.run("run", "--no-isolate", "--", *command)
    assert result.returncode == code, result.stderr
    assert command[0] in one_line_error(result)


def test_run_a_command_that_starts_exits_with_its_code(fw: Firewall) -> None:
    """The control: a command that exists keeps its own exit code, 127 included."""
    fw.apply(POLICY)
    result = fw.run("run", "--no-isolate", "--", "sh", "-c", "exit 127")
    assert result.returncode == 127, result.stderr
