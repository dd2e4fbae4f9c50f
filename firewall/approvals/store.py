"""Approval requests and their answers, in the state database (standing grants: grants.py).

The proxy records a held request as a `pending` row; whoever answers first
(the prompt, `firewall approvals approve|deny`, in any terminal of the same
user) changes its state with one `UPDATE ... WHERE state = 'pending'` whose
row count says who won; the proxy polls the rows it holds and sees the answer.

States of a row: `pending` → `approved` | `denied` | `expired` | `cancelled`.
Once decided, a row never changes state again; an approved row is *used* once
(by the held request, or by an identical retry when the agent gave up waiting).

Every function takes the time as `now` (epoch seconds): nothing here reads the
clock. Writes run in IMMEDIATE transactions, so several proxies and several
prompts can share one database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import TYPE_CHECKING

from firewall.approvals import grants
from firewall.approvals.records import (
    APPROVED,
    CANCELLED,
    DENIED,
    EXPIRED,
    PENDING,
    AlreadyDecided,
    Answer,
    Approval,
    HeldRequest,
    UnknownApproval,
    new_id,
)
from firewall.state.db import plain_connection, transaction
from firewall.state.pids import pid_alive
from firewall.text import iso_utc

if TYPE_CHECKING:  # the proxy's broker passes a plain sqlite3 connection (state/db.py's open_plain)
    import sqlite_utils

_APPROVAL_COLUMNS = ", ".join(f.name for f in fields(Approval))


def record_pending(db: sqlite_utils.Database, held: HeldRequest, now: float, proxy_pid: int) -> Approval:
    approval = Approval(
        **{f.name: getattr(held, f.name) for f in fields(HeldRequest)},  # every field of the held request
        id=new_id("apr"),
        created=now,
        expires=now + held.timeout,
        state=PENDING,
        proxy_pid=proxy_pid,
        held=1,
    )
    values = [getattr(approval, f.name) for f in fields(Approval)]
    with transaction(plain_connection(db), immediate=True):
        db.execute(f"INSERT INTO approvals ({_APPROVAL_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values)
    return approval


def get(db: sqlite_utils.Database, approval_id: str) -> Approval | None:
    row = db.execute(f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE id = ?", [approval_id]).fetchone()
    return Approval(*row) if row else None


def get_many(db: sqlite_utils.Database, ids: Iterable[str]) -> dict[str, Approval]:
    ids = list(ids)
    if not ids:
        return {}
    rows = db.execute(
        f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE id IN ({', '.join('?' * len(ids))})", ids
    ).fetchall()
    return {row[0]: Approval(*row) for row in rows}


def _update(db: sqlite_utils.Database, sql: str, params: list) -> int:
    with transaction(plain_connection(db), immediate=True):
        return db.execute(sql, params).rowcount


def expire(db: sqlite_utils.Database, approval_id: str, now: float) -> bool:
    """The proxy's timeout: pending → expired. False when an answer came first."""
    return (
        _update(
            db,
            "UPDATE approvals SET state = ?, decided_at = ?, held = 0, detail = ? WHERE id = ? AND state = ?",
            [EXPIRED, now, "no answer within the approval timeout", approval_id, PENDING],
        )
        == 1
    )


def cancel(db: sqlite_utils.Database, proxy_pid: int, now: float, detail: str) -> int:
    """A proxy stopping: every row it still holds pending → cancelled."""
    return _update(
        db,
        "UPDATE approvals SET state = ?, decided_at = ?, held = 0, detail = ? WHERE proxy_pid = ? AND state = ?",
        [CANCELLED, now, detail, proxy_pid, PENDING],
    )


def release(db: sqlite_utils.Database, approval_id: str) -> None:
    """The agent gave up waiting: the row stays pending, with nobody holding it."""
    _update(db, "UPDATE approvals SET held = 0 WHERE id = ? AND state = ?", [approval_id, PENDING])


def claim(db: sqlite_utils.Database, approval_id: str, request_id: str, now: float) -> bool:
    """Use an approved row for one request; False when it was used already."""
    return (
        _update(
            db,
            "UPDATE approvals SET used_at = ?, used_by_request = ?, held = 0 "
            "WHERE id = ? AND state = ? AND used_at IS NULL",
            [now, request_id, approval_id, APPROVED],
        )
        == 1
    )


def claim_retry(db: sqlite_utils.Database, held: HeldRequest, now: float) -> Approval | None:
    """An approval its own request never used (the agent had disconnected), claimed by an
    identical retry: same fingerprint and rule, within `timeout` seconds of the answer."""
    rows = db.execute(
        f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE fingerprint = ? AND agent = ? AND rule = ? "
        "AND state = ? AND used_at IS NULL AND decided_at + timeout > ? ORDER BY decided_at",
        [held.fingerprint, held.agent, held.rule, APPROVED, now],
    ).fetchall()
    for row in rows:
        approval = Approval(*row)
        if claim(db, approval.id, held.request_id, now):
            return get(db, approval.id)
    return None


def adopt_abandoned(db: sqlite_utils.Database, held: HeldRequest, now: float, proxy_pid: int) -> Approval | None:
    """A pending row of an identical request whose agent disconnected: this retry waits on it
    instead of asking again."""
    rows = db.execute(
        "SELECT id FROM approvals WHERE fingerprint = ? AND agent = ? AND rule = ? AND state = ? AND held = 0 "
        "AND expires > ? ORDER BY created",
        [held.fingerprint, held.agent, held.rule, PENDING, now],
    ).fetchall()
    for (approval_id,) in rows:
        if (
            _update(
                db,
                "UPDATE approvals SET held = 1, proxy_pid = ? WHERE id = ? AND state = ? AND held = 0",
                [proxy_pid, approval_id, PENDING],
            )
            == 1
        ):
            return get(db, approval_id)
    return None


def expire_stale(db: sqlite_utils.Database, now: float, alive: Callable[[int], bool] = pid_alive) -> int:
    """Pending rows nobody will answer for: past their expiry, or held by a proxy that is gone
    (crashed). Called when a proxy starts and before pending rows are listed."""
    stale = db.execute("SELECT id, proxy_pid, expires FROM approvals WHERE state = ?", [PENDING]).fetchall()
    count = 0
    for approval_id, pid, expires in stale:
        if expires <= now:
            detail = "no answer within the approval timeout"
        elif not alive(pid):
            detail = f"the proxy that held it (pid {pid}) is gone"
        else:
            continue
        count += _update(
            db,
            "UPDATE approvals SET state = ?, decided_at = ?, held = 0, detail = ? WHERE id = ? AND state = ?",
            [EXPIRED, now, detail, approval_id, PENDING],
        )
    return count


# ---- the person's side ----


def pending(db: sqlite_utils.Database) -> list[Approval]:
    """Pending rows, oldest first."""
    rows = db.execute(
        f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE state = ? ORDER BY created, id", [PENDING]
    ).fetchall()
    return [Approval(*row) for row in rows]


def recent(db: sqlite_utils.Database, limit: int) -> list[Approval]:
    """The newest `limit` rows in any state, oldest first."""
    rows = db.execute(
        f"SELECT {_APPROVAL_COLUMNS} FROM approvals ORDER BY created DESC, id DESC LIMIT ?", [limit]
    ).fetchall()
    return [Approval(*row) for row in reversed(rows)]


def answer(
    db: sqlite_utils.Database,
    approval_id: str,
    *,
    approve: bool,
    by: str,
    now: float,
    grant_for: float | None = None,
    via: str | None = None,
) -> Answer:
    """Approve or deny a pending row; with `grant_for` (seconds), also grant its rule to its
    agent until now + grant_for. `via` says where the answer came from (the CLI, the prompt on a
    terminal). The first answer wins: a row decided already raises AlreadyDecided."""
    if grant_for is not None and (not approve or grant_for <= 0):
        raise ValueError("grant_for needs approve=True and a positive number of seconds")
    with transaction(plain_connection(db), immediate=True):
        changed = db.execute(
            "UPDATE approvals SET state = ?, decided_at = ?, decided_by = ?, decided_via = ? "
            "WHERE id = ? AND state = ? AND expires > ?",
            [APPROVED if approve else DENIED, now, by, via, approval_id, PENDING, now],
        ).rowcount
        if changed == 1 and grant_for is not None:
            row = get(db, approval_id)
            grant = grants.insert_grant(db, row, by, now, now + grant_for)
            db.execute("UPDATE approvals SET grant_id = ? WHERE id = ?", [grant.id, approval_id])
    if changed == 1:
        row = get(db, approval_id)
        return Answer(row, grants.get_grant(db, row.grant_id) if row.grant_id else None)
    row = get(db, approval_id)
    if row is None:
        raise UnknownApproval(f"no approval request {approval_id!r}; `firewall approvals list` shows the pending ones")
    if row.state == PENDING:  # past its expiry; the proxy has not marked it yet
        expire(db, approval_id, now)
        row = get(db, approval_id)
    raise AlreadyDecided(f"{approval_id} was already decided: {describe_outcome(row)}")


def describe_outcome(row: Approval) -> str:
    when = iso_utc(row.decided_at) if row.decided_at is not None else "?"
    if row.state in (APPROVED, DENIED):
        return f"{row.state} by {row.decided_by} at {when}"
    return f"{row.state} at {when} ({row.detail})" if row.detail else f"{row.state} at {when}"
