"""The values the audit log's `decision` column takes, for checking a filter before it matches nothing."""

from __future__ import annotations

import sqlite_utils

# What the proxy writes (firewall/proxy/addons/, firewall/approvals/broker.py REFUSALS), in reading order.
DECISIONS: tuple[str, ...] = (
    "allow",
    "approve",
    "block",
    "limit",
    "exfiltration",
    "error",
    "approval_denied",
    "approval_expired",
    "approval_cancelled",
    "approval_used",
    "would_block",
    "would_limit",
    "would_approve",
)


def known_decisions(db: sqlite_utils.Database) -> tuple[str, ...]:
    """DECISIONS, and any other value already in the log (written by a newer version)."""
    stored = [value for (value,) in db.execute("SELECT DISTINCT decision FROM audit") if value not in DECISIONS]
    return DECISIONS + tuple(sorted(stored))
