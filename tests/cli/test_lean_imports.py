"""What hot processes import (structural checks, no timings): every module a process loads costs
its start-up time and its memory (docs/performance.md, "Start-up" and "Memory").

Read with `python -X importtime`, which lists every module a process imports, as it really starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("module", ["firewall.state.db", "firewall.cli.main"])
def test_control_a_module_that_loads_them_is_seen_loading_them(module: str):
    """The check above is not vacuous: the same reading sees the heavy packages when they load."""
    assert imported(["-c", f"import {module}"]) & set(HEAVY)
