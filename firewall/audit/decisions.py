"""The values the audit log's `decision` column takes, for checking a filter before it matches nothing."""

from __future__ import annotations

import sqlite_utils

from firewall.policy.outcomes import Outcome

# What the proxy writes: the one outcome vocabulary (firewall/policy/outcomes.py), in its order.
DECISIONS: tuple[str, ...] = tuple(outcome.value for outcome in Outcome)


def known_decisions(db: sqlite_utils.Database) -> tuple[str, ...]:
    """DECISIONS, and any other value already in the log (written by a newer version)."""
    stored = [value for (value,) in db.execute("SELECT DISTINCT decision FROM audit") if value not in DECISIONS]
    return DECISIONS + tuple(sorted(stored))
