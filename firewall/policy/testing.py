"""Running a policy's `test` blocks: each `expect` against `decide()`.

`expect limit … after N requests` asks whether the request, sent N times
already and let through each time, is over one of its limits on the next
send. The N earlier sends are the same request, so they count against the
same limits: the next one is over as soon as a limit allows N or fewer.
"""

from __future__ import annotations

from dataclasses import dataclass

from firewall.policy.compile_tests import ExpectCase
from firewall.policy.compiled import CompiledPolicy
from firewall.policy.decision import Decision, Verdict
from firewall.policy.engine import decide


@dataclass(frozen=True)
class ExpectResult:
    case: ExpectCase
    actual: str
    decision: Decision

    @property
    def passed(self) -> bool:
        return self.actual == self.case.expected

    def describe(self) -> str:
        rule = self.decision.rule.location if self.decision.rule else "no rule"
        return f"expected {self.case.expected}, got {self.actual} ({self.decision.reason.value}, {rule})"


def outcome(decision: Decision, after: int | None) -> str:
    """What the policy says: under `mode report`, what it would have done."""
    verdict = decision.would or decision.verdict
    if after is not None and verdict is not Verdict.BLOCK:
        if any(limit.amount <= after for limit in decision.limits):
            return "limit"
    return verdict.value


def run_expect(policy: CompiledPolicy, case: ExpectCase, now: float = 0.0) -> ExpectResult:
    decision = decide(policy, case.request, now)
    return ExpectResult(case, outcome(decision, case.after), decision)


def run_tests(policy: CompiledPolicy, cases: tuple[ExpectCase, ...]) -> list[ExpectResult]:
    return [run_expect(policy, case) for case in cases]
