"""Model prices, in dollars per million tokens, and the cost of one answer.

The shipped table was taken from the providers' public price pages on the date
below; a policy's `price` lines override it (docs/budgets.md). A model is priced
by its own name, else by the longest name in the table it extends with "-"
(`gpt-4o-2024-08-06` is priced as `gpt-4o`, `gpt-4o-mini` as itself).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from firewall.budgets.usage import Usage

PRICES_TAKEN = "2025-10-01"  # when the table below was read off the providers' price pages


@dataclass(frozen=True)
class Price:
    input: float  # dollars per million input tokens not read from the cache
    cached: float  # per million input tokens read from the cache
    output: float  # per million output tokens


SHIPPED: dict[str, Price] = {
    # OpenAI (platform.openai.com/docs/pricing, standard tier)
    "gpt-5": Price(1.25, 0.125, 10.00),
    "gpt-5-mini": Price(0.25, 0.025, 2.00),
    "gpt-5-nano": Price(0.05, 0.005, 0.40),
    "gpt-5-codex": Price(1.25, 0.125, 10.00),
    "gpt-4.1": Price(2.00, 0.50, 8.00),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40),
    "gpt-4o": Price(2.50, 1.25, 10.00),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),
    "o3": Price(2.00, 0.50, 8.00),
    "o3-mini": Price(1.10, 0.55, 4.40),
    "o4-mini": Price(1.10, 0.275, 4.40),
    "codex-mini-latest": Price(1.50, 0.375, 6.00),
    "text-embedding-3-small": Price(0.02, 0.02, 0.0),
    "text-embedding-3-large": Price(0.13, 0.13, 0.0),
    "text-embedding-ada-002": Price(0.10, 0.10, 0.0),
    # Anthropic (docs.anthropic.com pricing; cached = cache reads)
    "claude-opus-4-1": Price(15.00, 1.50, 75.00),
    "claude-opus-4": Price(15.00, 1.50, 75.00),
    "claude-sonnet-4-5": Price(3.00, 0.30, 15.00),
    "claude-sonnet-4": Price(3.00, 0.30, 15.00),
    "claude-3-7-sonnet": Price(3.00, 0.30, 15.00),
    "claude-haiku-4-5": Price(1.00, 0.10, 5.00),
    "claude-3-5-haiku": Price(0.80, 0.08, 4.00),
}


def price_of(model: str | None, overrides: dict[str, Price] | None = None) -> Price | None:
    """The price of `model`: the policy's `price` lines first, then the shipped table; None if neither
    knows it (a dollar budget then counts the answer as unreadable)."""
    if not model:
        return None
    table = {**SHIPPED, **(overrides or {})}
    if model in table:
        return table[model]
    known = [name for name in table if model.startswith(name + "-")]
    return table[max(known, key=len)] if known else None


def cost_micros(usage: Usage, price: Price) -> int:
    """What the answer cost, in millionths of a dollar, rounded up (a price per million tokens is
    a price in millionths per token)."""
    fresh = max(0, usage.input_tokens - usage.cached_tokens)
    exact = fresh * price.input + usage.cached_tokens * price.cached + usage.output_tokens * price.output
    return math.ceil(round(exact, 6))
