"""AuditRecord: it refuses what the table could not store as given, and matches the schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from firewall.audit.query import ALL_COLUMNS
from firewall.audit.record import COLUMNS, AuditRecordError
from firewall.policy.decision import Verdict
from firewall.state.db import open_database
from firewall.text import iso_utc
from tests.audit.support import make_record


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("request_id", None, "AuditRecord.request_id: must not be None"),
        ("host", b"example.com", "AuditRecord.host: expected str, got bytes"),
        ("port", "443", "AuditRecord.port: expected int, got str"),
        ("port", 0, "AuditRecord.port: 0 is not a TCP port"),
        ("port", 70000, "AuditRecord.port: 70000 is not a TCP port"),
        ("bytes_in", -1, "AuditRecord.bytes_in: -1 is outside 0..2**63-1"),
        ("bytes_out", 2**63, "AuditRecord.bytes_out: 9223372036854775808 is outside 0..2**63-1"),
        ("duration_ms", float("nan"), "AuditRecord.duration_ms: nan is not a finite number"),
        ("duration_ms", True, "AuditRecord.duration_ms: expected float, got bool"),
        ("time", -1.0, "AuditRecord.time: -1.0 is not an epoch time between 1970 and 9999"),
        ("time", 1e12, "AuditRecord.time: 1000000000000.0 is not an epoch time between 1970 and 9999"),
        ("scrubbed", 2, "AuditRecord.scrubbed: expected 0 or 1, got 2"),
        ("path", "/\udcff", "AuditRecord.path: not valid text (surrogates not allowed at 1)"),
    ],
)
def test_bad_field_names_itself(field: str, value: object, message: str) -> None:
    with pytest.raises(AuditRecordError) as caught:
        make_record(**{field: value})
    assert str(caught.value) == message


def test_values_are_normalised_to_what_sqlite_reads_back() -> None:
    record = make_record(time=1_750_000_000, duration_ms=3, scrubbed=True, decision=Verdict.BLOCK)
    assert (record.time, type(record.time)) == (1_750_000_000.0, float)
    assert (record.duration_ms, type(record.duration_ms)) == (3.0, float)
    assert (record.scrubbed, type(record.scrubbed)) == (1, int)
    assert (record.decision, type(record.decision)) == ("block", str)


def test_values_follow_columns() -> None:
    record = make_record(7)
    values = dict(zip(COLUMNS, record.values(42), strict=True))
    assert values["seq"] == 42
    assert values["time_iso"] == iso_utc(record.time)
    assert all(values[name] == getattr(record, name) for name in COLUMNS if name not in ("seq", "time_iso"))


@pytest.mark.parametrize(
    ("epoch", "text"),
    [(0.0, "1970-01-01T00:00:00.000Z"), (1_750_000_000.25, "2025-06-15T15:06:40.250Z")],
)
def test_iso_utc(epoch: float, text: str) -> None:
    assert iso_utc(epoch) == text


def test_table_has_the_columns_in_the_order_the_code_reads_them(tmp_path: Path) -> None:
    db = open_database(tmp_path / "firewall.db")
    assert tuple(db["audit"].columns_dict) == ALL_COLUMNS
    assert set(db["audit_anchor"].columns_dict) == {"seq", "hash", "time", "time_iso", "cutoff", "count"}
    indexed = {tuple(index.columns) for index in db["audit"].indexes}
    assert {("time",), ("agent",), ("host",), ("decision",)} <= indexed
