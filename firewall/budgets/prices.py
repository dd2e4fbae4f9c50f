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
PRICES_CHECKED = "2026-12-07"  # when each figure was checked again; where, in the comment beside it


@dataclass(frozen=True)
class Price:
    input: float  # dollars per million input tokens not read from the cache
    cached: float  # per million input tokens read from the cache
    output: float  # per million output tokens


# Checked on PRICES_CHECKED against stored copies of the providers' pages (docs/budgets.md, "Prices"):
#   [openai-model]  developers.openai.com/api/docs/models/<model> (OpenAI's model page, its "Text tokens")
#   [claude]        platform.claude.com/docs/about-claude/pricing ("Model pricing", cache hits = cached)
#   [not checked]   no copy of an OpenAI page for the model was found; the figure agrees with
#                   third-party copies (vercel.com/ai-gateway, openrouter.ai, simonw/llm-prices)
SHIPPED: dict[str, Price] = {
    # OpenAI (standard tier)
    "gpt-5": Price(1.25, 0.125, 10.00),  # [openai-model] input only (gpt-5.1's page compares it); rest not checked
    "gpt-5.1": Price(1.25, 0.125, 10.00),  # [openai-model]
    "gpt-5-mini": Price(0.25, 0.025, 2.00),  # [openai-model]
    "gpt-5-nano": Price(0.05, 0.005, 0.40),  # [openai-model]
    "gpt-5-codex": Price(1.25, 0.125, 10.00),  # [openai-model]
    "gpt-4.1": Price(2.00, 0.50, 8.00),  # [not checked]
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),  # [not checked]
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40),  # [not checked]
    "gpt-4o": Price(2.50, 1.25, 10.00),  # [not checked]
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),  # [not checked]
    "o3": Price(2.00, 0.50, 8.00),  # [not checked]
    "o3-mini": Price(1.10, 0.55, 4.40),  # [not checked]
    "o4-mini": Price(1.10, 0.275, 4.40),  # [not checked]
    "codex-mini-latest": Price(1.50, 0.375, 6.00),  # [openai-model]
    "text-embedding-3-small": Price(0.02, 0.02, 0.0),  # [not checked]
    "text-embedding-3-large": Price(0.13, 0.13, 0.0),  # [not checked]
    "text-embedding-ada-002": Price(0.10, 0.10, 0.0),  # [not checked]
    # Anthropic (cached = cache reads)
    "claude-opus-4-8": Price(5.00, 0.50, 25.00),  # [claude]
    "claude-opus-4-7": Price(5.00, 0.50, 25.00),  # [claude]
    "claude-opus-4-6": Price(5.00, 0.50, 25.00),  # [claude]
    "claude-opus-4-5": Price(5.00, 0.50, 25.00),  # [claude]; was priced as claude-opus-4 ($15/$75), 3x over
    "claude-opus-4-1": Price(15.00, 1.50, 75.00),  # [claude]
    "claude-opus-4": Price(15.00, 1.50, 75.00),  # [claude]
    "claude-sonnet-4-5": Price(3.00, 0.30, 15.00),  # [claude]
    "claude-sonnet-4": Price(3.00, 0.30, 15.00),  # [claude]
    "claude-3-7-sonnet": Price(3.00, 0.30, 15.00),  # [claude]
    "claude-haiku-4-5": Price(1.00, 0.10, 5.00),  # [claude]
    "claude-3-5-haiku": Price(0.80, 0.08, 4.00),  # [claude]
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
