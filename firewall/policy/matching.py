"""Which lines of a host block match a request: its rules (the engine's step 6), and the limits,
budgets and inject lines an allowed or approved request carries (step 8; engine.py). Pure."""

from __future__ import annotations

from firewall.policy.compiled import CompiledBlock, CompiledPolicy, RequestMatcher
from firewall.policy.conditions import RequestView, evaluate
from firewall.policy.decision import BudgetRef, Injection, LimitRef, Request


def matches(match: RequestMatcher, method: str, view: RequestView, *, lenient: bool) -> bool:
    """Whether a rule, limit or budget line matches; `lenient`: a condition that cannot be read
    (None) matches too."""
    if not match.matches_method_and_path(method, view.path):
        return False
    if match.when is None:
        return True
    result = evaluate(match.when, view)
    return result is True or (result is None and lenient)


def limits(block: CompiledBlock, request: Request, view: RequestView) -> tuple[LimitRef, ...]:
    # An unreadable condition counts the request (fails closed).
    return tuple(
        LimitRef(limit.key, limit.amount, limit.period, request.agent or "-" if limit.per_agent else None, limit.source)
        for limit in block.limits
        if matches(limit.match, request.method, view, lenient=True)
    )


def budgets(block: CompiledBlock, request: Request, view: RequestView) -> tuple[BudgetRef, ...]:
    # As limits: an unreadable condition counts the request (fails closed).
    return tuple(
        BudgetRef(
            budget.key,
            budget.amount,
            budget.measure,
            budget.period,
            request.agent or "-" if budget.per_agent else None,
            budget.source,
            budget.reserve,
            block.unreadable_usage,
        )
        for budget in block.budgets
        if matches(budget.match, request.method, view, lenient=True)
    )


def injections(policy: CompiledPolicy, block: CompiledBlock, view: RequestView) -> tuple[Injection, ...]:
    """The credentials the block's inject lines add; the first per header or parameter wins."""
    chosen: dict[tuple[str, str], Injection] = {}
    for line in block.injects:
        if line.when is not None and evaluate(line.when, view) is not True:
            continue
        spec = policy.credential_map[line.credential]
        slot = (spec.kind, spec.target)
        if slot not in chosen:
            chosen[slot] = Injection(spec.name, spec.secret, spec.kind, spec.target, spec.template, spec.settings)
    return tuple(chosen.values())
