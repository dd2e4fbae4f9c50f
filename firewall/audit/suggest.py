"""Reading the audit log for `policy suggest`: each row as what a suggestion learns from it.

The pure part (which rules, where) is firewall/policy/suggest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from firewall.policy.decision import Reason
from firewall.policy.outcomes import Outcome
from firewall.policy.replay import POLICY_INDEPENDENT
from firewall.policy.suggest import Observed, Seen

if TYPE_CHECKING:
    import sqlite_utils

_DEFAULT_REASONS = frozenset({Reason.DEFAULT_NO_HOST, Reason.DEFAULT_NO_RULE})
_REFUSED_BY_DEFAULT = frozenset({Outcome.BLOCK, Outcome.WOULD_BLOCK})
# Refusals a suggestion must never undo, nor cover with a glob: the firewall's own safety checks.
_SAFETY = POLICY_INDEPENDENT | {
    Reason.AMBIGUOUS_BODY,
    Reason.PRIVATE_ADDRESS,
    Reason.PLAIN_HTTP_CREDENTIAL,
    Reason.EXFILTRATION,
}
_REFUSED = frozenset({Outcome.EXFILTRATION, Outcome.APPROVAL_DENIED})


def seen(decision: str, reason: str) -> Seen | None:
    """What a row with this outcome and reason teaches, or None when it teaches nothing."""
    if decision in _REFUSED or (decision == Outcome.BLOCK and reason in _SAFETY):
        return Seen.REFUSED
    if decision == Outcome.APPROVE:
        return Seen.APPROVED
    if decision in _REFUSED_BY_DEFAULT and reason in _DEFAULT_REASONS:
        return Seen.DEFAULT
    return None


def observed_rows(db: sqlite_utils.Database, since: float | None) -> Iterator[Observed]:
    """The HTTP(S) rows from `since` on, oldest first, that approve, refuse by default or must stay refused."""
    sql = "SELECT decision, reason, method, scheme, host, port, path, query, agent, rule FROM audit"
    sql += " WHERE scheme IN ('http', 'https')"
    params: list[object] = []
    if since is not None:
        sql += " AND time >= ?"
        params.append(since)
    for decision, reason, method, scheme, host, port, path, query, agent, rule in db.execute(
        sql + " ORDER BY seq", params
    ):
        kind = seen(decision, reason)
        if kind is not None:
            yield Observed(kind, method, scheme, host, port, path, query, agent, rule)
