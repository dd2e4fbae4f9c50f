"""What hot processes import (structural checks, no timings): every module a process loads costs
its start-up time and its memory (docs/performance.md, "Start-up" and "Memory").

Read with `python -X importtime`, which lists every module a process imports, as it really starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from firewall.cli.run_plain import RunArgs, parse
from firewall.state.db import open_database

HEAVY = ("mitmproxy", "typer", "rich", "sqlite_utils", "lark", "click", "pydantic")


def imported(args: list[str], env: dict | None = None, stdin: str = "") -> set[str]:
    """The top-level packages a `python -X importtime ARGS` process imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert names, f"no import lines from {args}: {result.stderr[-500:]}"
    return names


def test_the_audit_writer_child_imports_neither_the_proxy_nor_the_command_line(tmp_path: Path):
    db = tmp_path / "firewall.db"
    open_database(db).conn.close()  # as ProcessAuditWriter does before it starts a child
    loaded = imported(["-m", "firewall.audit.child", str(db)])
    assert "firewall" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


RUN_NEVER = ("mitmproxy", "typer", "rich", "lark", "pydantic")  # sqlite_utils: still loaded (docs/performance.md)


def test_firewall_run_with_a_proxy_running_loads_no_proxy_no_typer_no_parser(firewall, proxy):
    """`firewall run -- CMD` of the usual shape, with the shared proxy running: it talks to the proxy
    through files and a socket, reads the compiled policy (no parser), and runs without Typer."""
    firewall.apply("default allow\n")
    loaded = imported(["-m", "firewall", "run", "--no-isolate", "--agent", "lean", "--", "true"], env=firewall.env)
    assert {"firewall", "sqlite3"} <= loaded
    assert loaded.isdisjoint(RUN_NEVER), sorted(loaded & set(RUN_NEVER))


def test_control_firewall_run_help_goes_to_typer(firewall):
    """Control: a command line of another shape (here --help) is still read by Typer, as before."""
    loaded = imported(["-m", "firewall", "run", "--help"], env=firewall.env)
    assert "typer" in loaded
    assert "mitmproxy" not in loaded


@pytest.mark.parametrize("module", ["firewall.state.policy_store", "firewall.cli.main", "firewall.proxy.master"])
def test_control_a_module_that_loads_them_is_seen_loading_them(module: str):
    """The checks above are not vacuous: the same reading sees the heavy packages when they load."""
    names = ["-c", f"import {module}"] if module != "firewall.cli.main" else ["-c", f"import {module} as m; m.app"]
    assert imported(names) & set(HEAVY)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--", "true"], RunArgs(["true"])),
        (["--agent", "ci", "--no-isolate", "--", "sh", "-c", "x"], RunArgs(["sh", "-c", "x"], "ci", no_isolate=True)),
        (["--agent=ci", "--policy", "a", "--policy=b", "--", "t"], RunArgs(["t"], "ci", [Path("a"), Path("b")])),
        (["--upstream-ca", "ca.pem", "--", "t", "--help"], RunArgs(["t", "--help"], upstream_ca=Path("ca.pem"))),
    ],
)
def test_plain_run_command_lines_are_read_without_typer(argv, expected):
    assert parse(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["true"],  # no `--`
        ["--"],  # no command
        ["--agent", "--", "true"],  # a value missing
        ["--agent", "a", "--agent", "b", "--", "true"],  # given twice
        ["--no-isolate", "--no-isolate", "--", "true"],
        ["--unknown", "--", "true"],
        ["--no-isolate=yes", "--", "true"],
        ["-h", "--", "true"],
    ],
)
def test_other_run_command_lines_are_left_to_typer(argv):
    assert parse(argv) is None
