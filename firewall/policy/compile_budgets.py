"""Compiling budgets (`limit 2000000 tokens per day`, `limit $20 per day`), the
`usage unreadable` setting and `price` lines (docs/budgets.md)."""

from __future__ import annotations

import hashlib
from decimal import Decimal, InvalidOperation

from firewall.policy import syntax as s
from firewall.policy.compile_base import Reporter, as_int
from firewall.policy.compiled import CompiledBudget, ModelPrice, RequestMatcher

BUDGET_PERIODS = ("hour", "day", "week", "month")
MICRO = Decimal(1_000_000)  # dollars are counted in millionths: the limits store counts whole numbers
RESERVABLE = ("tokens", "output_tokens", "usd")  # what `reserve max_tokens` can be counted against


def dollars(text: str) -> Decimal | None:
    """`$20`, `$0.15` → Decimal dollars; None if not a non-negative amount."""
    try:
        value = Decimal(text.removeprefix("$"))
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None


class BudgetsCompiler(Reporter):
    def _budget(self, node: s.Budget, block_patterns: list[str], match: RequestMatcher | None) -> CompiledBudget | None:
        ok = True
        if node.measure == "usd":
            value = dollars(node.amount.text)
            amount = int(value * MICRO) if value is not None else 0
            if amount < 1:
                self.error(
                    f'a budget must be a positive amount of dollars, not "{node.amount.text}"',
                    node.amount.span,
                    "for example: limit $20 per day per agent",
                )
                ok = False
        else:
            amount = as_int(node.amount.text) or 0
            if amount < 1:
                self.error(
                    f'a token budget must be a whole number of tokens, at least 1, not "{node.amount.text}"',
                    node.amount.span,
                    "for example: limit 2000000 tokens per day per agent",
                )
                ok = False
        if node.unit.text not in BUDGET_PERIODS:
            self.error(
                f"a budget counts per hour, day, week or month, not per {node.unit.text}",
                node.unit.span,
                "pace requests with a request limit (limit 60 per minute); budgets count what answers cost",
            )
            ok = False
        if node.reserve and node.measure not in RESERVABLE:
            self.error(
                f"reserve max_tokens reserves output tokens; a budget of {node.measure.replace('_', ' ')} "
                "cannot reserve them",
                node.span,
                "remove reserve max_tokens, or put it on a tokens, output tokens or $ budget",
            )
            ok = False
        if not ok or match is None:
            return None
        ref = self.ref(node.span)
        # The counter's name leaves the amount out: raising a budget keeps what was used so far.
        when = self.sources[node.span.file][node.when.span.start : node.when.span.end] if node.when else ""
        parts = [*sorted(block_patterns), node.measure, node.unit.text, str(node.per_agent)]
        parts += [",".join(match.methods), ",".join(match.paths), " ".join(when.split())]
        key = "b" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
        return CompiledBudget(key, amount, node.measure, node.unit.text, node.per_agent, match, ref, node.reserve)

    def _usage_setting(self, nodes: list[s.UsageSetting], has_budgets: bool) -> str:
        for extra in nodes[1:]:
            self.error(
                f"a second usage unreadable line in this host block; the first is at {nodes[0].span.location}",
                extra.span,
                "a host block says once what an unreadable answer counts",
            )
        if nodes and not has_budgets:
            self.warn("usage unreadable does nothing in a host block without a budget", nodes[0].span, "remove it")
        return nodes[0].action if nodes else "max_tokens"

    def _prices(self, nodes: list[s.PriceStmt]) -> tuple[ModelPrice, ...]:
        prices: dict[str, ModelPrice] = {}
        named: list[s.PriceStmt] = []
        for node in nodes:
            if node.model.value.strip():
                named.append(node)
            else:
                self.error("a price needs a model name", node.model.span, 'for example: price "gpt-4o-mini" ...')
        twice = 'the price of "{name}" is given twice'
        for model, node in self.once_each(named, lambda node: (node.model.value, node.model.span), twice):
            price = self._price(node)
            if price is not None:
                prices[model] = price
        return tuple(prices.values())

    def _price(self, node: s.PriceStmt) -> ModelPrice | None:
        given: dict[str, float] = {}
        ok = True
        for part in node.parts:
            if part.kind in given:
                self.error(f"{part.kind} is priced twice in this line", part.span)
                ok = False
                continue
            value = dollars(part.amount.text)
            if value is None:
                self.error(f'"{part.amount.text}" is not an amount of dollars', part.amount.span)
                ok = False
                continue
            given[part.kind] = float(value)
        missing = [kind for kind in ("input", "output") if kind not in given]
        if missing:
            self.error(
                f'the price of "{node.model.value}" needs {" and ".join(missing)}',
                node.span,
                f'for example: price "{node.model.value}" input $2.50 cached $1.25 output $10 (dollars per million '
                "tokens; cached is optional and defaults to input)",
            )
            ok = False
        if not ok:
            return None
        return ModelPrice(
            node.model.value, given["input"], given.get("cached", given["input"]), given["output"], self.ref(node.span)
        )
