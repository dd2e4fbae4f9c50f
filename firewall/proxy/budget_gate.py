"""Before a request goes out: is any of its budgets spent? (docs/budgets.md)

The engine named the budgets; this reads their counters (budget_store.py), makes
the `reserve max_tokens` reservations, and shapes the refusal: `429 budget_exhausted`,
`Retry-After` the seconds to the window's end, and a JSON body saying which budget,
how much was used, the limit and when it resets.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache

from mitmproxy import http

from firewall.budgets.charges import reservation
from firewall.budgets.prices import Price, price_of
from firewall.budgets.usage import requested_max_tokens, requested_model
from firewall.policy import BudgetRef, Decision
from firewall.policy.compiled import ModelPrice
from firewall.proxy.budget_store import BudgetStore, Hold, Spent
from firewall.proxy.responses import error_response


@lru_cache(maxsize=8)
def price_table(prices: tuple[ModelPrice, ...]) -> dict[str, Price]:
    """A policy's `price` lines as the overrides `price_of` takes (once per policy version)."""
    return {p.model: Price(p.input, p.cached, p.output) for p in prices}


async def check_budgets(
    store: BudgetStore, decision: Decision, body: bytes, prices: tuple[ModelPrice, ...], now: float
) -> Spent | Hold:
    reserve: tuple[int, ...] = (0,) * len(decision.budgets)
    if any(b.reserve for b in decision.budgets):
        max_tokens = requested_max_tokens(body)
        price = price_of(requested_model(body), price_table(prices))
        reserve = tuple(reservation(b.measure, max_tokens, price) if b.reserve else 0 for b in decision.budgets)
    return await store.check(decision.budgets, reserve, now)


def describe(budget: BudgetRef, amount: int) -> str | float:
    """An amount in the budget's own unit: dollars, or tokens."""
    return round(amount / 1_000_000, 6) if budget.measure == "usd" else amount


def budget_refusal(spent: Spent, request_id: str, now: float) -> http.Response:
    budget = spent.budget
    retry = max(1, math.ceil(spent.resets_at - now))
    resets = datetime.fromtimestamp(spent.resets_at, UTC).isoformat().replace("+00:00", "Z")
    unit = "dollars" if budget.measure == "usd" else budget.measure.replace("_", " ")
    who = f" for agent {budget.agent}" if budget.agent is not None else ""
    return error_response(
        429,
        "budget_exhausted",
        f"budget spent{who}: {budget.source.text} ({describe(budget, spent.used)} of "
        f"{describe(budget, budget.amount)} {unit} used); it resets at {resets}",
        request_id,
        rule=budget.source.id,
        headers={"retry-after": str(retry)},
        extra={
            "budget": {
                "rule": budget.source.text,
                "measure": budget.measure,
                "period": budget.period,
                "agent": budget.agent,
                "used": describe(budget, spent.used),
                "limit": describe(budget, budget.amount),
                "resets_at": resets,
            }
        },
    )
