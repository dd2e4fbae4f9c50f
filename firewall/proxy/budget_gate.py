"""Before a request goes out: is any of its budgets spent? (docs/budgets.md)

The engine named the budgets; this reads their counters (budget_store.py), makes
the `reserve max_tokens` reservations, and shapes the refusal: `429 budget_exhausted`,
`Retry-After` the seconds to the window's end, and a JSON body saying which budget,
how much was used, the limit and when it resets (inside a WebSocket: the same as an
`error` event). After the answer, `charge` says what it counts against each budget.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from mitmproxy import http

from firewall.budgets.charges import count, reservation
from firewall.budgets.prices import Price, price_of
from firewall.budgets.usage import Usage, requested_max_tokens, requested_model
from firewall.policy import BudgetRef, Decision
from firewall.policy.compiled import ModelPrice
from firewall.proxy.budget_store import BudgetStore, Hold, Spent
from firewall.proxy.responses import error_object, error_response, websocket_error


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


def budget_refusal(spent: Spent, request_id: str, now: float, *, responses_api: bool = False) -> http.Response:
    """`429 budget_exhausted`. On a Responses API path (`responses_api`: the POST, the GET that
    opens its WebSocket, a compaction) in the shape that API's clients stop on (`_usage_limit`)."""
    message, extra, headers = _refusal_parts(spent, now)
    rule = spent.budget.source.id
    if not responses_api:
        return error_response(429, "budget_exhausted", message, request_id, rule=rule, headers=headers, extra=extra)
    error = _usage_limit(error_object("budget_exhausted", message, request_id, rule=rule, extra=extra), spent, headers)
    answer = error_response(429, "budget_exhausted", message, request_id, rule=rule, headers=headers)
    answer.content = json.dumps({"error": error}).encode()
    return answer


def budget_refusal_event(spent: Spent, request_id: str, now: float) -> bytes:
    """The same refusal as an `error` event inside a Responses WebSocket (a turn refused)."""
    message, extra, headers = _refusal_parts(spent, now)
    error = error_object("budget_exhausted", message, request_id, rule=spent.budget.source.id, extra=extra)
    return websocket_error(429, _usage_limit(error, spent, headers), headers)


def _usage_limit(error: dict[str, object], spent: Spent, headers: dict[str, str]) -> dict[str, object]:
    """A refusal in the shape the Responses backend gives a spent allowance: `type`
    `usage_limit_reached` with `resets_at` (epoch seconds), on which Codex ends the turn for good and
    says when to try again (any other 429 it retries after `Retry-After`: for hours). `code` stays
    the firewall's `budget_exhausted`. The `x-codex-promo-message` header goes into Codex's message:
    "You've hit your usage limit. <it>, or try again at …"."""
    error["type"], error["resets_at"] = "usage_limit_reached", math.ceil(spent.resets_at)
    said = f"Firewall budget spent: {spent.budget.source.text} ({error['request_id']})"
    headers["x-codex-promo-message"] = said.encode("ascii", "replace").decode()
    return error


def _refusal_parts(spent: Spent, now: float) -> tuple[str, dict[str, object], dict[str, str]]:
    """(message, the error's `budget` member, headers) of a refusal for a spent budget."""
    budget = spent.budget
    retry = max(1, math.ceil(spent.resets_at - now))
    resets = datetime.fromtimestamp(spent.resets_at, UTC).isoformat().replace("+00:00", "Z")
    unit = "dollars" if budget.measure == "usd" else budget.measure.replace("_", " ")
    who = f" for agent {budget.agent}" if budget.agent is not None else ""
    message = (
        f"budget spent{who}: {budget.source.text} ({describe(budget, spent.used)} of "
        f"{describe(budget, budget.amount)} {unit} used); it resets at {resets}"
    )
    extra: dict[str, object] = {
        "budget": {
            "rule": budget.source.text,
            "measure": budget.measure,
            "period": budget.period,
            "agent": budget.agent,
            "used": describe(budget, spent.used),
            "limit": describe(budget, budget.amount),
            "resets_at": resets,
        }
    }
    return message, extra, {"retry-after": str(retry)}


@dataclass(frozen=True)
class Charge:
    """What one answer counts against its request's budgets, and what its audit row says of it."""

    amounts: tuple[int, ...]  # one per budget of the decision, in its order
    usage: Usage | None
    model: str | None  # the answer's, else the request's
    cost_usd: float | None
    note: str | None  # why it counted otherwise than as it reported (usage unreadable, no price)


def charge(decision: Decision, prices: tuple[ModelPrice, ...], usage: Usage | None, body: bytes) -> Charge:
    """Count an answer that was billed: its usage (None: unreadable), against `decision`'s budgets,
    by the request `body`'s max_tokens where the usage cannot be read."""
    price = price_of(usage.model if usage else None, price_table(prices))
    max_tokens = requested_max_tokens(body) if usage is None else None
    budgets = tuple((b.measure, b.amount, b.unreadable) for b in decision.budgets)
    counted = count(budgets, usage, price, max_tokens)
    model = (usage.model if usage else None) or requested_model(body)
    cost = counted.cost_micros / 1_000_000 if counted.cost_micros is not None else None
    return Charge(counted.amounts, usage, model, cost, counted.note)
