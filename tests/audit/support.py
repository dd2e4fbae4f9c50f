"""Helpers for the audit tests: plausible records and the real sqlite3 shell."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from firewall.audit.record import COLUMNS, AuditRecord

BASE_TIME = 1_750_000_000.0  # 2025-06-15T15:06:40Z
# Every column after seq up to prev_hash, for tampering by INSERT ... SELECT with the real sqlite3 shell.
CONTENT_AFTER_SEQ = ", ".join(COLUMNS[1:])
# The columns those values go into (the table's own order puts the later-added ones after hash).
INSERT_COLUMNS = ", ".join((*COLUMNS, "prev_hash", "hash"))

Write = Callable[[Iterable[AuditRecord]], None]  # the `write` fixture


def make_record(i: int = 0, **overrides: object) -> AuditRecord:
    """A plausible record; `i` varies the request id and time, `overrides` set any field."""
    fields: dict[str, object] = {
        "time": BASE_TIME + i,
        "request_id": f"req-{i}",
        "agent": "coder",
        "method": "GET",
        "scheme": "https",
        "host": "api.example.com",
        "port": 443,
        "path": "/v1/items",
        "query": "page=2",
        "decision": "allow",
        "reason": "rule",
        "rule": "policy.fw:12",
        "policy_sha256": "ab" * 32,
        "credentials": "",
        "upstream_status": 200,
        "duration_ms": 12.5,
        "bytes_out": 120,
        "bytes_in": 4096,
        "approval_id": None,
        "scrubbed": 0,
        "detail": None,
    }
    fields.update(overrides)
    return AuditRecord(**fields)


def sqlite3_cli(path: Path, sql: str) -> None:
    """Run `sql` with the real sqlite3 command-line shell, as someone tampering would."""
    binary = shutil.which("sqlite3")
    if binary is None:
        pytest.fail("the sqlite3 command-line shell is needed: apt-get install sqlite3")
    subprocess.run([binary, str(path), sql], check=True, capture_output=True, text=True, timeout=30)
