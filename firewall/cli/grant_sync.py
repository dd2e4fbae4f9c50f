"""Ending the standing grants whose rule left the policy in force (a new version, a rollback)."""

from __future__ import annotations

import sqlite_utils

from firewall.approvals import grants
from firewall.approvals.records import Grant
from firewall.policy import CompiledPolicy
from firewall.state import policy_store


def end_orphan_grants(db: sqlite_utils.Database, policy: CompiledPolicy | None, now: float) -> list[Grant]:
    """End every live grant whose rule `policy` no longer has; [] when there is no policy."""
    if policy is None:
        return []
    return grants.end_orphans(db, [(r.id, r.text, bool(r.name)) for r in policy.rule_refs()], now)


def in_force(db: sqlite_utils.Database) -> CompiledPolicy | None:
    """The policy in force, or None when there is none or it cannot be read (then nothing is ended)."""
    try:
        version = policy_store.active_version(db)
        return version.load() if version is not None else None
    except policy_store.PolicyStoreError:
        return None


def ended_line(grant: Grant) -> str:
    return (
        f"ended grant {grant.id}: rule {grant.rule} ({grant.rule_text}) for agent {grant.agent} "
        "is not in the policy in force"
    )
