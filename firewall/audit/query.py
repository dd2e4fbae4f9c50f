"""Reading the audit log: filtered rows, rows newer than a seq, counts per group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from firewall.audit.record import TABLE_COLUMNS

if TYPE_CHECKING:  # annotations only: the audit writer's child process never loads sqlite_utils
    import sqlite_utils

ALL_COLUMNS: tuple[str, ...] = TABLE_COLUMNS
GROUPS: tuple[str, ...] = ("decision", "agent", "host", "rule", "model")


@dataclass(frozen=True)
class AuditFilter:
    """Which rows to read; every field left None matches everything.

    `since` is inclusive and `until` exclusive (epoch seconds); the text
    fields must equal the column exactly.
    """

    since: float | None = None
    until: float | None = None
    agent: str | None = None
    host: str | None = None
    decision: str | None = None
    rule: str | None = None

    def sql(self) -> tuple[str, list[object]]:
        """An SQL condition and its parameters."""
        clauses: list[str] = []
        params: list[object] = []
        if self.since is not None:
            clauses.append("time >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("time < ?")
            params.append(self.until)
        for column in ("agent", "host", "decision", "rule"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return " AND ".join(clauses) or "1", params


Row = dict[str, object]


def newest(db: sqlite_utils.Database, filters: AuditFilter, limit: int | None) -> list[Row]:
    """The newest `limit` matching rows (all when None), oldest first."""
    condition, params = filters.sql()
    sql = f"SELECT {', '.join(ALL_COLUMNS)} FROM audit WHERE {condition} ORDER BY seq DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    rows = [dict(zip(ALL_COLUMNS, row, strict=True)) for row in db.execute(sql, params)]
    rows.reverse()
    return rows


def last_seq(db: sqlite_utils.Database) -> int:
    """The seq of the newest row, 0 when the table is empty."""
    return db.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()[0]


def between(db: sqlite_utils.Database, filters: AuditFilter, after: int, upto: int) -> list[Row]:
    """Matching rows with `after` < seq <= `upto`, in seq order."""
    condition, params = filters.sql()
    sql = f"SELECT {', '.join(ALL_COLUMNS)} FROM audit WHERE seq > ? AND seq <= ? AND {condition} ORDER BY seq"
    return [dict(zip(ALL_COLUMNS, row, strict=True)) for row in db.execute(sql, [after, upto, *params])]


@dataclass(frozen=True)
class Group:
    """The rows of one value of the grouping column, counted per decision."""

    value: str | None
    total: int
    decisions: tuple[tuple[str, int], ...]  # most frequent first
    input_tokens: int = 0  # what the answers used (docs/budgets.md)
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0


def stats(db: sqlite_utils.Database, filters: AuditFilter, by: str = "decision") -> list[Group]:
    """Counts of matching rows per value of `by` (one of GROUPS), largest group first."""
    if by not in GROUPS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUPS)}")
    condition, params = filters.sql()
    counts: dict[str | None, dict[str, int]] = {}
    used: dict[str | None, list[float]] = {}
    sql = (
        f"SELECT {by}, decision, count(*), total(input_tokens), total(output_tokens), total(cached_tokens), "
        f"total(cost_usd) FROM audit WHERE {condition} GROUP BY {by}, decision"
    )
    for value, decision, count, *sums in db.execute(sql, params):
        counts.setdefault(value, {})[decision] = count
        totals = used.setdefault(value, [0.0, 0.0, 0.0, 0.0])
        for i, amount in enumerate(sums):
            totals[i] += amount
    groups = [
        Group(
            value=value,
            total=sum(per_decision.values()),
            decisions=tuple(sorted(per_decision.items(), key=lambda item: (-item[1], item[0]))),
            input_tokens=int(used[value][0]),
            output_tokens=int(used[value][1]),
            cached_tokens=int(used[value][2]),
            cost_usd=round(used[value][3], 6),
        )
        for value, per_decision in counts.items()
    ]
    groups.sort(key=lambda group: (-group.total, group.value is None, str(group.value)))
    return groups
