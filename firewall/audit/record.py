"""One audit row: what the proxy did with one request, as it is stored."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from operator import attrgetter

from firewall.text import iso_utc


class AuditRecordError(ValueError):
    """A record field has a value the audit table cannot store as given."""


@dataclass(frozen=True)
class AuditRecord:
    """The fields of one request's audit row, in table column order.

    The proxy fills it from the request and its `Decision`; `query` must
    already have credential-looking values masked. Construction checks every
    field, so a bad record fails here, in the caller, rather than in the
    writer where it would fail its whole batch (the audit writer's child
    process takes the fields as checked).
    """

    time: float  # epoch seconds
    request_id: str
    agent: str | None
    method: str
    scheme: str
    host: str
    port: int
    path: str  # canonical path
    query: str
    decision: str
    reason: str
    rule: str | None  # "file:line"
    policy_sha256: str
    credentials: str  # comma-joined names of the credentials injected, "" for none
    upstream_status: int | None
    duration_ms: float
    bytes_out: int
    bytes_in: int
    approval_id: str | None
    scrubbed: int  # 0 or 1
    detail: str | None
    # What the answer used, as the budgets counted it (docs/budgets.md); None where nothing was read.
    # Added after the first rows were written: the chain hashes them only when set (chain.py).
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    model: str | None = None  # the model the answer named (or the request, when it named none)
    # The request fields its host block's conditions read that no other column holds (headers, JSON
    # fields, body.size), as JSON, masked (firewall/policy/field_values.py); None when it reads none.
    fields: str | None = None

    def __post_init__(self) -> None:
        for name, check, optional in _CHECKS:
            value = getattr(self, name)
            if value is None:
                if not optional:
                    raise AuditRecordError(f"AuditRecord.{name}: must not be None")
                continue
            checked = check(value, name)
            if checked is not value:
                object.__setattr__(self, name, checked)
        if not 0 <= self.time < _YEAR_10000:
            raise AuditRecordError(f"AuditRecord.time: {self.time} is not an epoch time between 1970 and 9999")
        if not 0 < self.port < 65536:
            raise AuditRecordError(f"AuditRecord.port: {self.port} is not a TCP port")
        if self.scrubbed not in (0, 1):
            raise AuditRecordError(f"AuditRecord.scrubbed: expected 0 or 1, got {self.scrubbed}")

    def as_tuple(self) -> tuple[object, ...]:
        """The fields in order: `AuditRecord(*record.as_tuple())` is an equal record."""
        return _ALL_FIELDS(self)

    def values(self, seq: int) -> tuple[object, ...]:
        """The row's values in COLUMNS order, for `seq`."""
        return row_values(seq, self.as_tuple())


def row_values(seq: int, fields: tuple[object, ...]) -> tuple[object, ...]:
    """The values in COLUMNS order of row `seq`, from an `as_tuple()` of a checked record."""
    return (seq, fields[0], iso_utc(fields[0]), *fields[1:])  # type: ignore[arg-type]


def _text(value: object, name: str) -> str:
    if type(value) is not str:
        if not isinstance(value, str):
            raise AuditRecordError(f"AuditRecord.{name}: expected str, got {type(value).__name__}")
        value = str(value)  # a str subclass (an enum member) is stored as its plain value
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise AuditRecordError(f"AuditRecord.{name}: not valid text ({exc.reason} at {exc.start})") from None
    return value


def _integer(value: object, name: str) -> int:
    if type(value) is not int:
        # bool is an int subclass: store it as 0/1 so the row reads back as it was hashed.
        if not isinstance(value, int):
            raise AuditRecordError(f"AuditRecord.{name}: expected int, got {type(value).__name__}")
        value = int(value)
    if not 0 <= value < 2**63:
        raise AuditRecordError(f"AuditRecord.{name}: {value} is outside 0..2**63-1")
    return value


def _real(value: object, name: str) -> float:
    # SQLite stores NaN as NULL, and an int in a REAL column reads back as a float:
    # either way the row would no longer match its hash.
    if type(value) is not float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AuditRecordError(f"AuditRecord.{name}: expected float, got {type(value).__name__}")
        value = float(value)
    if not math.isfinite(value):
        raise AuditRecordError(f"AuditRecord.{name}: {value} is not a finite number")
    return value


_YEAR_10000 = 253402300800.0
_CHECKERS = {"str": _text, "int": _integer, "float": _real}
_CHECKS = tuple(
    (f.name, _CHECKERS[str(f.type).removesuffix(" | None")], str(f.type).endswith(" | None"))
    for f in fields(AuditRecord)
)
_NAMES = tuple(f.name for f in fields(AuditRecord))
_ALL_FIELDS = attrgetter(*_NAMES)  # `time` is the first field; `time_iso` follows it in the table
FIELD_INDEX = {name: i for i, name in enumerate(_NAMES)}  # a field's place in as_tuple()

# The stored columns the hash chain covers, in table order: everything but prev_hash and hash.
COLUMNS: tuple[str, ...] = ("seq", "time", "time_iso", *_NAMES[1:])
# Columns added by a later migration: a row hashes them only when they hold a value, so the rows
# written before they existed keep their hashes.
ADDED_COLUMNS: tuple[str, ...] = ("input_tokens", "output_tokens", "cached_tokens", "cost_usd", "model", "fields")
# Every column in table order: the added ones came after `hash` (ALTER TABLE ... ADD COLUMN).
TABLE_COLUMNS: tuple[str, ...] = (
    *(c for c in COLUMNS if c not in ADDED_COLUMNS),
    "prev_hash",
    "hash",
    *ADDED_COLUMNS,
)
