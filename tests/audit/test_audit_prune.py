"""Pruning: old rows go, the anchor keeps the rest verifiable, tampering is not laundered."""

from __future__ import annotations

from pathlib import Path

import pytest

from firewall.audit.chain import verify
from firewall.audit.prune import PruneError, prune
from firewall.audit.writer import AuditWriter
from firewall.state.db import open_database
from tests.audit.support import BASE_TIME, CONTENT_AFTER_SEQ, INSERT_COLUMNS, Write, make_record, sqlite3_cli

NOW = BASE_TIME + 100


def run_prune(path: Path, cutoff: float):
    db = open_database(path)
    try:
        return prune(db, cutoff, now=NOW)
    finally:
        db.conn.close()


def state(path: Path) -> tuple[list[int], list[tuple], str]:
    """Seqs left, anchors, and verify's verdict."""
    db = open_database(path)
    try:
        seqs = [r[0] for r in db.execute("SELECT seq FROM audit ORDER BY seq")]
        anchors = list(db.execute("SELECT seq, time, cutoff, count FROM audit_anchor ORDER BY seq"))
        return seqs, anchors, verify(db).describe()
    finally:
        db.conn.close()


def test_prune_deletes_old_rows_and_anchors_the_rest(db_path: Path, write: Write) -> None:
    write(make_record(i) for i in range(10))  # times BASE_TIME + 0 .. + 9
    result = run_prune(db_path, BASE_TIME + 4)
    assert (result.deleted, result.last_seq) == (4, 4)
    seqs, anchors, verdict = state(db_path)
    assert seqs == list(range(5, 11))
    assert anchors == [(4, NOW, BASE_TIME + 4, 4)]
    assert verdict.startswith("audit log intact: 6 rows after row 4 (rows up to it were pruned); last row 10")


def test_anchor_holds_the_hash_of_the_last_row_pruned(db_path: Path, write: Write) -> None:
    write(make_record(i) for i in range(5))
    db = open_database(db_path)
    row_3_hash = db.execute("SELECT hash FROM audit WHERE seq = 3").fetchone()[0]
    db.conn.close()
    run_prune(db_path, BASE_TIME + 3)
    db = open_database(db_path)
    assert list(db.execute("SELECT seq, hash FROM audit_anchor")) == [(3, row_3_hash)]
    db.conn.close()


def test_writing_continues_the_chain_after_a_prune_of_every_row(db_path: Path, write: Write) -> None:
    write(make_record(i) for i in range(5))
    assert run_prune(db_path, BASE_TIME + 1000).deleted == 5
    assert state(db_path)[2] == "audit log intact: 0 rows after row 5 (rows up to it were pruned)"
    write(make_record(i) for i in range(5, 8))
    seqs, _, verdict = state(db_path)
    assert seqs == [6, 7, 8]
    assert verdict.startswith("audit log intact: 3 rows after row 5")


def test_second_prune_starts_from_the_first_anchor(db_path: Path, write: Write) -> None:
    write(make_record(i) for i in range(10))
    run_prune(db_path, BASE_TIME + 3)
    assert run_prune(db_path, BASE_TIME + 7).deleted == 4
    seqs, anchors, verdict = state(db_path)
    assert seqs == [8, 9, 10]
    assert [a[0] for a in anchors] == [3, 7]
    assert verdict.startswith("audit log intact: 3 rows after row 7")


def test_nothing_old_enough_deletes_nothing(db_path: Path, write: Write) -> None:
    write(make_record(i) for i in range(3))
    result = run_prune(db_path, BASE_TIME - 1)
    assert (result.deleted, result.last_seq) == (0, None)
    assert state(db_path)[:2] == ([1, 2, 3], [])


def test_an_old_row_behind_a_newer_one_waits(db_path: Path, write: Write) -> None:
    """Two proxies' clocks can disagree; only an unbroken run from the start can go."""
    write(make_record(i, time=t) for i, t in enumerate([BASE_TIME, BASE_TIME + 50, BASE_TIME + 1, BASE_TIME + 60]))
    assert run_prune(db_path, BASE_TIME + 10).deleted == 1
    assert state(db_path)[0] == [2, 3, 4]


def test_prune_refuses_to_delete_tampered_rows_and_changes_nothing(db_path: Path, write: Write) -> None:
    write(make_record(i) for i in range(6))
    sqlite3_cli(db_path, "UPDATE audit SET decision = 'allow-ish' WHERE seq = 2")
    with pytest.raises(PruneError, match=r"^refusing to prune: audit log tampered at row 2: changed$"):
        run_prune(db_path, BASE_TIME + 4)
    seqs, anchors, verdict = state(db_path)
    assert (seqs, anchors, verdict) == ([1, 2, 3, 4, 5, 6], [], "audit log tampered at row 2: changed")


def test_prune_refuses_when_the_rows_before_the_kept_ones_are_gone(db_path: Path, write: Write) -> None:
    write(make_record(i) for i in range(6))
    sqlite3_cli(db_path, "DELETE FROM audit WHERE seq <= 3")
    with pytest.raises(PruneError, match=r"tampered at row 1: deleted"):
        run_prune(db_path, BASE_TIME + 4)


def test_deleting_the_anchor_is_reported(db_path: Path, write: Write) -> None:
    write(make_record(i) for i in range(6))
    run_prune(db_path, BASE_TIME + 3)
    sqlite3_cli(db_path, "DELETE FROM audit_anchor")
    assert state(db_path)[2] == "audit log tampered at row 1: deleted"


def test_a_row_slipped_in_below_the_anchor_is_out_of_order(db_path: Path, write: Write) -> None:
    write(make_record(i) for i in range(6))
    run_prune(db_path, BASE_TIME + 3)
    sqlite3_cli(
        db_path,
        f"INSERT INTO audit ({INSERT_COLUMNS}) SELECT 2, {CONTENT_AFTER_SEQ}, prev_hash, hash FROM audit WHERE seq = 4",
    )
    assert state(db_path)[2] == "audit log tampered at row 2: out of order"


def test_a_writer_open_during_the_prune_keeps_the_chain(db_path: Path) -> None:
    with AuditWriter(db_path) as writer:
        for i in range(5):
            writer.submit(make_record(i))
        writer.flush(timeout=5)
        run_prune(db_path, BASE_TIME + 1000)
        for i in range(5, 9):
            writer.submit(make_record(i))
    seqs, _, verdict = state(db_path)
    assert seqs == [6, 7, 8, 9]
    assert verdict.startswith("audit log intact: 4 rows after row 5")
