"""Reading the audit log for `policy replay`: each recorded request as the replay needs it.

The pure part (deciding under two policies, classifying the change) is firewall/policy/replay.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from firewall.policy.decision import TUNNEL_METHOD, Request
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

_COLUMNS = "agent, method, scheme, host, port, path, query, reason"


def recorded_rows(db: sqlite_utils.Database, since: float | None) -> Iterator[Recorded | None]:
    """Every row from `since` on, oldest first: a `Recorded`, or None for a row the policy did not decide."""
    sql = f"SELECT {_COLUMNS} FROM audit"
    params: list[object] = []
    if since is not None:
        sql += " WHERE time >= ?"
        params.append(since)
    for agent, method, scheme, host, port, path, query, reason in db.execute(sql + " ORDER BY seq", params):
        if reason in NOT_DECIDED or scheme not in ("http", "https", "tcp"):
            yield None
            continue
        if scheme == "tcp":
            yield Recorded(Request(TUNNEL_METHOD, "tcp", host, port, "", agent=agent), reason)
            continue
        masked = frozenset(name for name, value in parse_qsl(query) if MASK in value) if MASK in query else frozenset()
        target = f"{path}?{query}" if query else path
        yield Recorded(Request(method, scheme, host, port, target, agent=agent), reason, masked)


def replay_log(replay: Replay, db: sqlite_utils.Database, since: float | None) -> Replay:
    """Add every recorded request from `since` on to `replay`."""
    for recorded in recorded_rows(db, since):
        if recorded is None:
            replay.skip()
        else:
            replay.add(recorded)
    return replay
