"""What became of a request: the audit row's `decision` column, one vocabulary for every room.

The engine decides a verdict (decision.py). What then becomes of the request also depends on what
the proxy found after it: a limit reached, a person's answer, a failure. `forwarded_outcome` is the
pure step that names the outcome of a request the verdict let through, under the policy's mode
(the same report-mode rule as the engine's: in `mode report` nothing is refused, only marked).
"""

from __future__ import annotations

from enum import StrEnum

from firewall.policy.decision import Decision, Mode, Reason


class Outcome(StrEnum):
    ALLOW = "allow"  # let through
    APPROVE = "approve"  # let through by a person's answer or a standing grant
    WOULD_BLOCK = "would_block"  # mode report: let through; an enforcing policy would block it
    WOULD_APPROVE = "would_approve"  # mode report: let through; an enforcing policy would hold it
    WOULD_LIMIT = "would_limit"  # mode report: let through over a limit
    BLOCK = "block"  # refused by the policy (or for lack of valid agent credentials)
    EXFILTRATION = "exfiltration"  # refused: it carries a vault secret it may not carry
    LIMIT = "limit"  # refused: over a limit
    ERROR = "error"  # refused: the firewall could not do what the request needed (fail closed)
    PROBE = "probe"  # `firewall doctor`'s probe, answered by the proxy itself, never forwarded
    APPROVAL_DENIED = "approval_denied"
    APPROVAL_EXPIRED = "approval_expired"
    APPROVAL_CANCELLED = "approval_cancelled"
    APPROVAL_USED = "approval_used"
    APPROVAL_ABANDONED = "approval_abandoned"

    @property
    def forwarded(self) -> bool:
        """The request went upstream, so its row's status is the upstream's."""
        return self in FORWARDED


FORWARDED = frozenset({Outcome.ALLOW, Outcome.APPROVE, Outcome.WOULD_BLOCK, Outcome.WOULD_APPROVE, Outcome.WOULD_LIMIT})


def blocked_outcome(decision: Decision) -> Outcome:
    """The outcome of a request the verdict refused."""
    return Outcome.EXFILTRATION if decision.reason is Reason.EXFILTRATION else Outcome.BLOCK


def forwarded_outcome(decision: Decision, *, approved: bool, over_limit: bool) -> Outcome:
    """The outcome of a request the verdict let through (held ones: once `approved`).

    Over a limit it is refused (LIMIT), except in report mode, where it goes on marked WOULD_LIMIT.
    """
    if over_limit:
        return Outcome.WOULD_LIMIT if decision.mode is Mode.REPORT else Outcome.LIMIT
    if approved:
        return Outcome.APPROVE
    if decision.would is not None:
        return Outcome(f"would_{decision.would.value}")
    return Outcome.ALLOW


def approval_outcome(state: str) -> Outcome:
    """The outcome of a held request that ended in `state` (denied, expired, ...) without going on."""
    return Outcome(f"approval_{state}")
