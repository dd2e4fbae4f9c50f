"""What the audit writer's child process imports, started as ProcessAuditWriter starts it
(structural, no byte counts): every module stays in its memory while the proxy runs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from firewall.audit.frames import encode_frame
from firewall.audit.process_writer import child_command, child_env
from firewall.state.db import open_database
from tests.audit.support import make_record

# OpenSSL's hashlib (the chain hashes with CPython's own SHA-256) and site (-S: site-packages, .pth files).
CHILD_NEVER = ("_hashlib", "site")


def _imports(stderr: str) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_the_child_writes_a_batch_without_openssl_or_site(tmp_path: Path):
    db = tmp_path / "firewall.db"
    open_database(db).conn.close()
    env = {**child_env(), "PYTHONPROFILEIMPORTTIME": "1"}
    rows = [make_record(time=time.time()).as_tuple()]
    child = subprocess.run(
        child_command(db), input=encode_frame(1, False, rows), capture_output=True, env=env, timeout=60
    )
    assert child.stdout.decode().split("\n")[:2] == ["got 1", "ok 1"], child.stderr[-2000:]
    loaded = _imports(child.stderr.decode())
    assert {"sqlite3", "firewall.audit.chain", "_sha2"} <= loaded
    assert loaded.isdisjoint(CHILD_NEVER), sorted(loaded & set(CHILD_NEVER))


def test_control_the_same_reading_sees_them_when_they_load():
    code = "import hashlib"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert set(CHILD_NEVER) <= _imports(result.stderr)
