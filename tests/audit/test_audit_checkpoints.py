"""Signed checkpoints catch what the hash chain alone cannot: truncation, a recomputed chain, a
forged prune. Each attack is made with the sqlite3 shell, as someone tampering would; each has a
control that must verify."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from firewall.audit.chain import COLUMNS, GENESIS, row_hash
from tests.audit.support import sqlite3_cli
from tests.audit.test_audit_cli import firewall, home, logged  # noqa: F401 (fixtures)


@pytest.fixture
def checkpointed(logged: Path) -> Path:  # noqa: F811
    result = firewall(logged, "checkpoint")
    assert result.returncode == 0, result.stderr
    assert "checkpoint: row 6" in result.stdout
    return logged


def _verify(home: Path, *args: str):  # noqa: F811
    return firewall(home, "verify", *args)


def test_control_an_untouched_log_agrees_with_its_checkpoints(checkpointed: Path) -> None:
    result = _verify(checkpointed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 signed checkpoint(s)" in result.stdout


def test_truncating_the_last_rows_is_caught(checkpointed: Path) -> None:
    sqlite3_cli(checkpointed / "firewall.db", "DELETE FROM audit WHERE seq > 4")
    assert "audit log intact" in _verify(checkpointed).stdout  # the chain alone cannot tell
    result = _verify(checkpointed)
    assert result.returncode == 1 and "row 6" in result.stdout and "truncated" in result.stdout


def _recompute_chain(db_path: Path, change: str) -> None:
    """Edit rows, then recompute every hash so the chain verifies again."""
    conn = sqlite3.connect(db_path)
    conn.execute(change)
    prev = GENESIS
    for row in conn.execute(f"SELECT seq, {', '.join(COLUMNS)} FROM audit ORDER BY seq").fetchall():
        digest = row_hash(prev, row[1:])
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", [prev, digest, row[0]])
        prev = digest
    conn.commit()
    conn.close()


def test_a_recomputed_chain_is_caught(checkpointed: Path) -> None:
    _recompute_chain(checkpointed / "firewall.db", "UPDATE audit SET decision = 'allow' WHERE seq = 5")
    result = _verify(checkpointed)
    assert "audit log intact" in result.stdout
    assert result.returncode == 1 and "rewritten" in result.stdout


def test_a_forged_prune_is_caught(checkpointed: Path) -> None:
    db = checkpointed / "firewall.db"
    conn = sqlite3.connect(db)
    prev_of_4 = conn.execute("SELECT prev_hash FROM audit WHERE seq = 4").fetchone()[0]
    conn.close()
    sqlite3_cli(
        db,
        "DELETE FROM audit WHERE seq <= 3; INSERT INTO audit_anchor (seq, hash, time, time_iso, "
        f"cutoff, count) VALUES (3, '{prev_of_4}', 0, '', 0, 3)",
    )
    result = _verify(checkpointed)
    assert "audit log intact" in result.stdout
    assert result.returncode == 1 and "forged prune" in result.stdout


def test_control_a_real_prune_is_signed_and_verifies(checkpointed: Path) -> None:
    assert firewall(checkpointed, "prune", "--older-than", "1d").returncode == 0
    result = _verify(checkpointed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 signed checkpoint(s)" in result.stdout  # the head before, the prune, the head after


def test_an_edited_checkpoint_line_is_caught(checkpointed: Path) -> None:
    path = checkpointed / "audit-checkpoints.jsonl"
    line = json.loads(path.read_text())
    path.write_text(json.dumps({**line, "seq": 2}) + "\n")
    result = _verify(checkpointed)
    assert result.returncode == 1 and "signature does not hold" in result.stdout


def test_a_copy_kept_elsewhere_verifies_with_the_public_key(checkpointed: Path, tmp_path: Path) -> None:
    public = tmp_path / "audit-key.pub"
    assert firewall(checkpointed, "checkpoint", "--public-key", str(public)).returncode == 0
    copy = tmp_path / "shipped.jsonl"
    copy.write_bytes((checkpointed / "audit-checkpoints.jsonl").read_bytes())
    assert _verify(checkpointed, "--checkpoint", str(copy), "--public-key", str(public)).returncode == 0
    # Whoever holds the state folder rewrites its own checkpoint file too; the copy still tells.
    (checkpointed / "audit-checkpoints.jsonl").unlink()
    _recompute_chain(checkpointed / "firewall.db", "DELETE FROM audit WHERE seq = 6")
    assert _verify(checkpointed).returncode == 0  # nothing left to compare with
    result = _verify(checkpointed, "--checkpoint", str(copy), "--public-key", str(public))
    assert result.returncode == 1 and "truncated" in result.stdout


def test_a_missing_checkpoint_file_is_a_clear_error(checkpointed: Path, tmp_path: Path) -> None:
    result = _verify(checkpointed, "--checkpoint", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 1 and "nope.jsonl" in result.stderr and "Traceback" not in result.stderr
