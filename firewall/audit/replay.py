"""Reading the audit log for `policy replay`: each recorded request as the replay needs it.

The pure part (deciding under two policies, classifying the change) is firewall/policy/replay.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from firewall.policy.decision import TUNNEL_METHOD, Request
from firewall.policy.field_values import rebuild
from firewall.policy.replay import Recorded, Replay

if TYPE_CHECKING:
    import sqlite_utils

MASK = "****"  # firewall.redaction's mask: what a credential-looking query value was replaced by

# Rows the policy did not decide: refused before it (no agent credentials, request trailers, a name
# that did not resolve, a stopping proxy, a failure), a doctor probe, or an event row that repeats
# an earlier row's request (an injected credential masked in a WebSocket message).
NOT_DECIDED = frozenset(
    {
        "not_decided",
        "internal_error",
        "proxy_auth_required",
        "request_trailers",
        "unresolvable",
        "proxy_stopping",
        "doctor_probe",
        "scrubbed",
        "audit_unavailable",
    }
)

_COLUMNS = "agent, method, scheme, host, port, path, query, reason, fields"
_CHUNK = 100_000  # rows counted at a time


def _recorded(agent, method, scheme, host, port, path, query, reason, fields=None) -> Recorded:
    if scheme == "tcp":
        return Recorded(Request(TUNNEL_METHOD, "tcp", host, port, "", agent=agent), reason)
    masked = frozenset(name for name, value in parse_qsl(query) if MASK in value) if MASK in query else frozenset()
    target = f"{path}?{query}" if query else path
    headers, body, size, known = rebuild(fields)  # the fields the block's conditions read, as recorded
    if body is None:
        body = b""
    request = Request(
        method, scheme, host, port, target, headers, body, len(body) if size is None else size, agent=agent
    )
    return Recorded(request, reason, masked, known)


def _rows(db: sqlite_utils.Database, since: float | None) -> Iterator[tuple]:
    sql = f"SELECT {_COLUMNS} FROM audit"
    params: list[object] = []
    if since is not None:
        sql += " WHERE time >= ?"
        params.append(since)
    return db.conn.execute(sql + " ORDER BY seq", params)


def recorded_rows(db: sqlite_utils.Database, since: float | None) -> Iterator[Recorded | None]:
    """Every row from `since` on, oldest first: a `Recorded`, or None for a row the policy did not decide."""
    for row in _rows(db, since):
        yield None if _not_decided(row) else _recorded(*row)


def _not_decided(row: tuple) -> bool:
    return row[7] in NOT_DECIDED or row[2] not in ("http", "https", "tcp")


def _shapes(db: sqlite_utils.Database, since: float | None) -> Iterator[tuple[tuple, int]]:
    """Each distinct recorded request from `since` on (the columns above, equal in every one) with
    the number of rows that recorded it, in the order of its first row. Counted in chunks of rows
    read in order, so memory stays bounded: a request recorded in several chunks comes once per
    chunk. (Faster than SQLite's GROUP BY, which sorts.)"""
    cursor = _rows(db, since)
    while rows := cursor.fetchmany(_CHUNK):
        yield from Counter(rows).items()


def replay_log(replay: Replay, db: sqlite_utils.Database, since: float | None) -> Replay:
    """Add every recorded request from `since` on to `replay`: each distinct one decided once and
    counted as many times as it was recorded. It is made into a request only when its destination
    is decided differently by the two policies."""
    for row, count in _shapes(db, since):
        agent, method, scheme, host, port, path, query, reason, fields = row
        if reason in NOT_DECIDED or scheme not in ("http", "https", "tcp"):
            replay.skip(count)
            continue
        replay.add_counted(
            lambda row=row: _recorded(*row),
            count,
            agent=agent,
            method=method,
            host=host,
            port=port,
            path=path,
            query=query,
            rest=(scheme, reason, fields),
        )
    return replay
