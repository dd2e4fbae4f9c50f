"""What one answer counts against each of its budgets (docs/budgets.md).

Budgets are given as plain (measure, amount, unreadable) triples, so this stays
apart from the policy package. Amounts are tokens, or millionths of a dollar for
"usd". An answer whose usage cannot be read, or a dollar budget for a model no
price is known for, counts by the host block's `usage unreadable` setting:
`max_tokens` counts the request's max_tokens as output tokens; `refuse`, or a
request that names no max_tokens, spends the budget for the rest of its window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from firewall.budgets.prices import Price, cost_micros
from firewall.budgets.usage import Usage


@dataclass(frozen=True)
class Counted:
    amounts: tuple[int, ...]  # one per budget, in the order given
    cost_micros: int | None  # the answer's cost, None when it cannot be priced
    note: str | None  # why an answer counted otherwise than as it reported, for the audit row


def count(
    budgets: tuple[tuple[str, int, str], ...],
    usage: Usage | None,
    price: Price | None,
    max_tokens: int | None,
) -> Counted:
    cost = cost_micros(usage, price) if usage is not None and price is not None else None
    amounts: list[int] = []
    notes: set[str] = set()
    for measure, amount, unreadable in budgets:
        if usage is not None and measure != "usd":
            amounts.append(usage.amount(measure))
            continue
        if measure == "usd" and cost is not None:
            amounts.append(cost)
            continue
        why = "usage unreadable" if usage is None else f"no price for model {usage.model or '(none named)'}"
        if unreadable == "max_tokens" and max_tokens is not None:
            guess = Usage(0, max_tokens, 0)
            if measure != "usd":
                amounts.append(guess.amount(measure))
                notes.add(f"{why}: counted max_tokens {max_tokens}")
                continue
            if price is not None:
                amounts.append(cost_micros(guess, price))
                notes.add(f"{why}: counted max_tokens {max_tokens}")
                continue
        amounts.append(amount)  # spent until its window ends
        notes.add(f"{why}: the budget is spent until it resets")
    return Counted(tuple(amounts), cost, "; ".join(sorted(notes)) or None)


def reservation(measure: str, max_tokens: int | None, price: Price | None) -> int:
    """What `reserve max_tokens` counts before the request goes out: its max_tokens as output
    tokens (0 when it names none, or for dollars when its model has no known price)."""
    if max_tokens is None:
        return 0
    if measure in ("tokens", "output_tokens"):
        return max_tokens
    if measure == "usd" and price is not None:
        return math.ceil(max_tokens * price.output)
    return 0
