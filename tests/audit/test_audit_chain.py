"""The hash chain: verify finds edits made with the real sqlite3 shell, and names the row."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firewall.audit.chain import GENESIS, canonical_json, row_hash, verify
from firewall.audit.query import ALL_COLUMNS
from firewall.audit.record import ADDED_COLUMNS, COLUMNS
from firewall.audit.writer import AuditWriter
from firewall.state.db import open_database
from tests.audit.support import CONTENT_AFTER_SEQ, INSERT_COLUMNS, Write, make_record, sqlite3_cli

ROWS = 5
TARGET = 3  # the middle row every tampering test edits


def report(path: Path):
    db = open_database(path)
    try:
        return verify(db)
    finally:
        db.conn.close()


@pytest.fixture
def five_rows(db_path: Path, write: Write) -> Path:
    write(make_record(i, approval_id=None if i % 2 else f"appr-{i}") for i in range(ROWS))
    return db_path


def test_untouched_log_is_intact(five_rows: Path) -> None:
    result = report(five_rows)
    assert result.intact
    assert result.rows == ROWS
    assert result.describe().startswith(f"audit log intact: {ROWS} rows; last row {ROWS} has hash ")


def test_empty_log_is_intact(db_path: Path) -> None:
    assert report(db_path).describe() == "audit log intact: 0 rows"


def row(path: Path, seq: int) -> dict[str, object]:
    db = open_database(path)
    try:
        return dict(
            zip(
                ALL_COLUMNS,
                db.execute(f"SELECT {', '.join(ALL_COLUMNS)} FROM audit WHERE seq = ?", [seq]).fetchone(),
                strict=True,
            )
        )
    finally:
        db.conn.close()


def test_first_row_links_to_genesis_and_each_row_to_the_one_before(five_rows: Path) -> None:
    rows = [row(five_rows, seq) for seq in range(1, ROWS + 1)]
    assert rows[0]["prev_hash"] == GENESIS
    assert all(rows[i]["prev_hash"] == rows[i - 1]["hash"] for i in range(1, ROWS))


def test_hash_is_sha256_of_prev_hash_and_sorted_compact_json(five_rows: Path) -> None:
    """The recipe docs/audit.md gives, so other tools can recompute it."""
    first = row(five_rows, 1)
    assert _recipe_hash(GENESIS, first) == first["hash"]


def _tamper_expression(column: str) -> str:
    """An SQL expression that changes `column`'s value in a way its type allows."""
    numeric = {
        "port": "+ 1",
        "bytes_out": "+ 1",
        "bytes_in": "+ 1",
        "scrubbed": "+ 1",
        "upstream_status": "+ 1",
        "time": "+ 0.5",
        "duration_ms": "+ 0.5",
    }
    if column in numeric:
        return f"coalesce({column}, 0) {numeric[column]}"
    return f"coalesce({column}, '') || 'x'"


@pytest.mark.parametrize("column", [c for c in ALL_COLUMNS if c != "seq"])
def test_update_of_any_column_is_reported_as_changed_at_that_row(five_rows: Path, column: str) -> None:
    sqlite3_cli(five_rows, f"UPDATE audit SET {column} = {_tamper_expression(column)} WHERE seq = {TARGET}")
    result = report(five_rows)
    assert result.describe() == f"audit log tampered at row {TARGET}: changed"
    assert result.rows == TARGET - 1


@pytest.mark.parametrize("column", ["agent", "rule", "approval_id", "detail", "upstream_status"])
def test_setting_a_nullable_column_to_null_is_reported(db_path: Path, write: Write, column: str) -> None:
    write(make_record(i, agent="a", rule="f:1", approval_id="ap", detail="d", upstream_status=200) for i in range(ROWS))
    sqlite3_cli(db_path, f"UPDATE audit SET {column} = NULL WHERE seq = {TARGET}")
    assert report(db_path).describe() == f"audit log tampered at row {TARGET}: changed"


def test_update_with_a_blob_is_reported(five_rows: Path) -> None:
    sqlite3_cli(five_rows, f"UPDATE audit SET host = CAST(host AS BLOB) WHERE seq = {TARGET}")
    assert report(five_rows).describe() == f"audit log tampered at row {TARGET}: changed"


def test_renumbering_a_row_is_reported_where_it_went_missing(five_rows: Path) -> None:
    sqlite3_cli(five_rows, f"UPDATE audit SET seq = seq + 1000 WHERE seq = {TARGET}")
    assert report(five_rows).describe() == f"audit log tampered at row {TARGET}: deleted"


def test_deleting_a_middle_row_names_it(five_rows: Path) -> None:
    sqlite3_cli(five_rows, f"DELETE FROM audit WHERE seq = {TARGET}")
    assert report(five_rows).describe() == f"audit log tampered at row {TARGET}: deleted"


def test_deleting_several_rows_names_the_first(five_rows: Path) -> None:
    sqlite3_cli(five_rows, "DELETE FROM audit WHERE seq IN (2, 3, 4)")
    assert report(five_rows).describe() == "audit log tampered at row 2: deleted"


def test_deleting_the_first_row_names_it(five_rows: Path) -> None:
    sqlite3_cli(five_rows, "DELETE FROM audit WHERE seq = 1")
    assert report(five_rows).describe() == "audit log tampered at row 1: deleted"


def test_deleting_the_last_row_goes_unnoticed(five_rows: Path) -> None:
    """The documented limit: nothing after the last row vouches for it (docs/audit.md)."""
    sqlite3_cli(five_rows, f"DELETE FROM audit WHERE seq = {ROWS}")
    assert report(five_rows).describe().startswith(f"audit log intact: {ROWS - 1} rows")


def test_swapping_two_rows_contents_is_reported(five_rows: Path) -> None:
    sqlite3_cli(
        five_rows,
        "UPDATE audit SET request_id = CASE seq WHEN 2 THEN 'req-3' ELSE 'req-2' END WHERE seq IN (2, 3)",
    )
    assert report(five_rows).describe() == "audit log tampered at row 2: changed"


def test_a_row_appended_with_a_made_up_hash_is_reported(five_rows: Path) -> None:
    last = row(five_rows, ROWS)
    sqlite3_cli(
        five_rows,
        f"INSERT INTO audit ({INSERT_COLUMNS}) SELECT seq + 1, {CONTENT_AFTER_SEQ}, '{last['hash']}', '{'f' * 64}'"
        f" FROM audit WHERE seq = {ROWS}",
    )
    assert report(five_rows).describe() == f"audit log tampered at row {ROWS + 1}: changed"


def test_a_copy_of_row_1_with_its_hash_recomputed_is_out_of_order_at_seq_0(five_rows: Path) -> None:
    first = row(five_rows, 1)
    forged = row_hash(GENESIS, [0, *(first[c] for c in COLUMNS[1:])])
    sqlite3_cli(
        five_rows,
        f"INSERT INTO audit ({INSERT_COLUMNS}) "
        f"SELECT 0, {CONTENT_AFTER_SEQ}, '{GENESIS}', '{forged}' FROM audit WHERE seq = 1",
    )
    assert report(five_rows).describe() == "audit log tampered at row 0: out of order"


def test_a_row_with_a_valid_hash_but_wrong_link_is_out_of_order(five_rows: Path) -> None:
    target = row(five_rows, TARGET)
    forged = row_hash(GENESIS, [target[c] for c in COLUMNS])
    sqlite3_cli(five_rows, f"UPDATE audit SET prev_hash = '{GENESIS}', hash = '{forged}' WHERE seq = {TARGET}")
    assert report(five_rows).describe() == f"audit log tampered at row {TARGET}: out of order"


def test_canonical_json_cannot_confuse_a_blob_with_text() -> None:
    host = COLUMNS.index("host")
    as_text = list(make_record().values(1))
    as_blob = list(as_text)
    as_text[host], as_blob[host] = b"hi".hex(), b"hi"
    assert canonical_json(as_text) != canonical_json(as_blob)


text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "time": st.floats(min_value=0, max_value=4e9),
                "agent": st.none() | text,
                "path": text,
                "query": text,
                "detail": st.none() | text,
                "duration_ms": st.floats(min_value=0, max_value=1e12),
                "bytes_in": st.integers(min_value=0, max_value=2**63 - 1),
                "upstream_status": st.none() | st.integers(min_value=0, max_value=999),
            }
        ),
        min_size=1,
        max_size=8,
    )
)
def test_any_values_read_back_exactly_as_hashed(tmp_path_factory: pytest.TempPathFactory, fields: list[dict]) -> None:
    path = tmp_path_factory.mktemp("roundtrip") / "firewall.db"
    with AuditWriter(path) as writer:
        for i, overrides in enumerate(fields):
            writer.submit(make_record(i, **overrides))
    assert report(path).rows == len(fields)
    prev = GENESIS
    for seq in range(1, len(fields) + 1):  # every hash also matches the recipe docs/audit.md gives
        stored = row(path, seq)
        assert stored["hash"] == _recipe_hash(prev, stored)
        prev = stored["hash"]


def _recipe_hash(prev_hash: str, stored: dict) -> str:
    content = {k: v for k, v in stored.items() if k not in ("prev_hash", "hash")}
    content = {k: v for k, v in content.items() if not (k in ADDED_COLUMNS and v is None)}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + text).encode()).hexdigest()


def test_canonical_json_refuses_a_row_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="hashed columns"):
        canonical_json(make_record().values(1)[:-1])
