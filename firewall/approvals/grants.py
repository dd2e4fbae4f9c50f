"""Standing grants: `agent` may send what one approve rule holds, without asking, until they expire.

A grant names its rule by its stable name (`firewall.policy.RuleRef.id`). A rule without an
`as "name"` is named by file (relative to the policy's folder) and line, and its grant also
holds its text: an edited or moved rule no longer matches it. A named rule's grant survives
edits of the rule: that is what the name is for. A grant whose rule is gone from the policy
in force is ended (`end_orphans`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import TYPE_CHECKING

from firewall.approvals.records import AlreadyDecided, Approval, Grant, UnknownApproval, new_id
from firewall.state.db import plain_connection, transaction
from firewall.text import iso_utc

if TYPE_CHECKING:  # the proxy's broker passes a plain sqlite3 connection (state/db.py's open_plain)
    import sqlite_utils

_GRANT_COLUMNS = ", ".join(f.name for f in fields(Grant))


def update_one(db: sqlite_utils.Database, sql: str, params: list) -> int:
    with transaction(plain_connection(db), immediate=True):
        return db.execute(sql, params).rowcount


def insert_grant(db: sqlite_utils.Database, row: Approval, by: str, now: float, expires: float) -> Grant:
    grant = Grant(
        id=new_id("grt"),
        agent=row.agent,
        rule=row.rule,
        rule_text=row.rule_text,
        created=now,
        expires=expires,
        created_by=by,
        approval_id=row.id,
        revoked=None,
        revoked_by=None,
    )
    values = [getattr(grant, f.name) for f in fields(Grant)]
    db.execute(f"INSERT INTO approval_grants ({_GRANT_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values)
    return grant


def get_grant(db: sqlite_utils.Database, grant_id: str) -> Grant | None:
    row = db.execute(f"SELECT {_GRANT_COLUMNS} FROM approval_grants WHERE id = ?", [grant_id]).fetchone()
    return Grant(*row) if row else None


def matching_grant(
    db: sqlite_utils.Database, agent: str, rule: str, rule_text: str, now: float, named: bool = False
) -> Grant | None:
    """A live grant of exactly this rule to exactly this agent: same name, and for a rule without
    an `as "name"` (not `named`) the same text."""
    row = db.execute(
        f"SELECT {_GRANT_COLUMNS} FROM approval_grants WHERE agent = ? AND rule = ? AND (rule_text = ? OR ?) "
        "AND expires > ? AND revoked IS NULL ORDER BY expires DESC LIMIT 1",
        [agent, rule, rule_text, 1 if named else 0, now],
    ).fetchone()
    return Grant(*row) if row else None


ORPHAN_BY = "policy"  # revoked_by of a grant ended because its rule left the policy


def orphans(live: list[Grant], rules: Iterable[tuple[str, str, bool]]) -> list[Grant]:
    """The grants among `live` whose rule is not among `rules` ((id, text, named) of each rule of
    the policy in force): they can never match again."""
    named = {rule_id for rule_id, _, is_named in rules if is_named}
    exact = {(rule_id, text) for rule_id, text, _ in rules}
    return [g for g in live if g.rule not in named and (g.rule, g.rule_text) not in exact]


def end_orphans(db: sqlite_utils.Database, rules: Iterable[tuple[str, str, bool]], now: float) -> list[Grant]:
    """End (revoke, by "policy") every live grant whose rule is gone; returns them as they were."""
    rules = list(rules)
    gone = orphans(live_grants(db, now), rules)
    for grant in gone:
        update_one(
            db,
            "UPDATE approval_grants SET revoked = ?, revoked_by = ? WHERE id = ? AND revoked IS NULL",
            [now, ORPHAN_BY, grant.id],
        )
    return gone


def live_grants(db: sqlite_utils.Database, now: float) -> list[Grant]:
    rows = db.execute(
        f"SELECT {_GRANT_COLUMNS} FROM approval_grants WHERE expires > ? AND revoked IS NULL ORDER BY created, id",
        [now],
    ).fetchall()
    return [Grant(*row) for row in rows]


def revoke(db: sqlite_utils.Database, grant_id: str, by: str, now: float) -> Grant:
    """End a grant now; a grant revoked or expired already raises ApprovalError."""
    changed = update_one(
        db,
        "UPDATE approval_grants SET revoked = ?, revoked_by = ? WHERE id = ? AND revoked IS NULL AND expires > ?",
        [now, by, grant_id, now],
    )
    grant = get_grant(db, grant_id)
    if grant is None:
        raise UnknownApproval(f"no grant {grant_id!r}; `firewall approvals grants` shows the live ones")
    if changed != 1:
        if grant.revoked is not None:
            raise AlreadyDecided(
                f"grant {grant_id} was already revoked by {grant.revoked_by} at {iso_utc(grant.revoked)}"
            )
        raise AlreadyDecided(f"grant {grant_id} already expired at {iso_utc(grant.expires)}")
    return grant
