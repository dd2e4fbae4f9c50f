"""The counters of token and cost budgets: in this process (`memory://`), or in the shared limits
store (`redis://`), where two proxies count one budget together.

One counter per budget, agent and calendar window (the window's name is part of the key,
so a new window starts at zero and an old one simply expires). In the shared store each is
a `limits` fixed-window counter, added to with `hit(item, *ids, cost=N)`; its expiry only
clears it away after its window ended.

Reading before a request goes out is bounded like the request limits: a store that does
not answer within the limiter's timeout, or fails, raises `LimitsUnavailable` (the request
is refused, fail closed). Adding after an answer is bounded too; a failure is logged (the
answer was already delivered) and that usage is lost to the count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from firewall.budgets.windows import window, window_id
from firewall.policy import BudgetRef
from firewall.proxy.limiter import Limiter, LimitsUnavailable

log = logging.getLogger("firewall.proxy")
_SPAN = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 31 * 86400}
_KEEP = 3600  # seconds a counter outlives its window (clock skew between proxies)
_NEVER_FULL = 2**62  # the `limits` item's own amount: budgets compare with their amounts here


@dataclass(frozen=True)
class Spent:
    budget: BudgetRef
    used: int
    resets_at: float  # epoch seconds: the end of the window


@dataclass(frozen=True)
class Hold:
    """Where a let-through request counts: each budget's window, and what was reserved there."""

    windows: tuple[str, ...]
    reserved: tuple[int, ...]


class MemoryBudgets:
    """Budget counters kept in one process: (key, agent, window) -> [used, end of window].

    Used by a proxy under `memory://`, and by the count service of a proxy of several
    workers (firewall/proxy/counts.py), where every worker's requests count here. A budget
    only needs `key`, `agent`, `period` and `amount`. Runs on one event loop only; each call
    is whole (no await inside), so a check and its reservation are one step.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], list[float]] = {}
        self._swept = 0.0

    def check(self, budgets, windows: tuple[str, ...], reserve: tuple[int, ...], now: float) -> tuple[int, int] | None:
        """(index, used) of the first budget already spent; else None, the reservations made."""
        for index, count in enumerate(self.read(budgets, windows)):
            if count >= budgets[index].amount:
                return index, count
        if any(reserve):
            self.add(budgets, windows, reserve, now)
        return None

    def read(self, budgets, windows: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(int(self._counts.get(_key(b, w), (0, 0))[0]) for b, w in zip(budgets, windows))

    def add(self, budgets, windows: tuple[str, ...], amounts: tuple[int, ...], now: float) -> None:
        self._sweep(now)
        for budget, name, amount in zip(budgets, windows, amounts):
            entry = self._counts.setdefault(_key(budget, name), [0, window(budget.period, now)[1]])
            entry[0] += amount

    def counters(self, now: float) -> list[tuple[tuple[str, str, str], int, float]]:
        """Each counter of a window not yet ended: ((key, agent, window), used, end)."""
        return sorted((key, int(used), end) for key, (used, end) in self._counts.items() if end > now)

    def _sweep(self, now: float) -> None:
        if now - self._swept < 60:
            return
        self._swept = now
        for key, (_, end) in list(self._counts.items()):
            if end + _KEEP < now:
                del self._counts[key]


class BudgetStore:
    def __init__(self, limiter: Limiter):
        self.limiter = limiter
        self._memory = MemoryBudgets() if limiter.memory is not None else None
        self._counts = limiter.counts  # a worker's: the supervisor's count service (counts.py)
        if self._memory is None and self._counts is None:
            from limits.aio.strategies import FixedWindowRateLimiter

            self.strategy = FixedWindowRateLimiter(limiter.storage)

    async def check(self, budgets: tuple[BudgetRef, ...], reserve: tuple[int, ...], now: float) -> Spent | Hold:
        """The first budget already spent, or (none is) the request's hold, its reservations made.

        Raises LimitsUnavailable when the shared store cannot be read in time."""
        windows = tuple(window_id(b.period, now) for b in budgets)
        if self._memory is not None:
            spent = self._memory.check(budgets, windows, reserve, now)
        elif self._counts is not None:
            spent = await self._bounded(self._counts.budget_check(budgets, windows, reserve, now))
        else:
            spent = await self._check_shared(budgets, windows, reserve, now)
        if spent is not None:
            budget = budgets[spent[0]]
            return Spent(budget, spent[1], window(budget.period, now)[1])
        return Hold(windows, reserve)

    async def _check_shared(
        self, budgets: tuple[BudgetRef, ...], windows: tuple[str, ...], reserve: tuple[int, ...], now: float
    ) -> tuple[int, int] | None:
        used = await self._bounded(self._read(budgets, windows))
        for index, (budget, count) in enumerate(zip(budgets, used)):
            if count >= budget.amount:
                return index, count
        if any(reserve):
            await self._bounded(self._add(budgets, windows, reserve, now))
        return None

    def hold(self, budgets: tuple[BudgetRef, ...], now: float) -> Hold:
        """Where a request counts that reserved nothing (under `mode report`, one over budget)."""
        return Hold(tuple(window_id(b.period, now) for b in budgets), (0,) * len(budgets))

    async def add(self, budgets: tuple[BudgetRef, ...], hold: Hold, amounts: tuple[int, ...], now: float) -> None:
        """Count an answer (less what was reserved for it); a store that fails is logged, not raised."""
        extra = tuple(amount - reserved for amount, reserved in zip(amounts, hold.reserved))
        if not any(extra):
            return
        try:
            await self._bounded(self._add(budgets, hold.windows, extra, now))
        except LimitsUnavailable as exc:
            log.error("the usage of an answer was not counted against its budgets: %s", exc)

    async def used(self, budgets: tuple[BudgetRef, ...], now: float) -> tuple[int, ...]:
        """What each budget has used in its current window."""
        windows = tuple(window_id(b.period, now) for b in budgets)
        return await self._bounded(self._read(budgets, windows))

    @property
    def in_memory(self) -> bool:
        """The proxy holds the counters (itself, or its supervisor): it publishes them (budget_snapshot.py)."""
        return self._memory is not None or self._counts is not None

    async def counters(self, now: float) -> list[tuple[tuple[str, str, str], int, float]]:
        """Under `memory://`, each counter of a window not yet ended: ((key, agent, window), used, end).
        The agent is "*" for a budget every agent shares."""
        if self._memory is not None:
            return self._memory.counters(now)
        if self._counts is not None:
            return await self._bounded(self._counts.budget_counters(now))
        return []

    async def _bounded[T](self, work: Coroutine[Any, Any, T]) -> T:
        limiter = self.limiter
        if self._memory is not None:
            return await work
        try:
            async with asyncio.timeout(limiter.timeout):
                result = await work
        except TimeoutError:
            limiter.outage.failed(
                f"no answer within {limiter.timeout * 1000:.0f} ms",
                consequence="requests with budgets are refused with 503 limits_unavailable",
            )
            raise LimitsUnavailable(f"the limits store did not answer within {limiter.timeout * 1000:.0f} ms") from None
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            limiter.outage.failed(detail, consequence="requests with budgets are refused with 503 limits_unavailable")
            raise LimitsUnavailable(f"the limits store failed ({detail})") from None
        limiter.outage.ok()
        return result

    async def _read(self, budgets: tuple[BudgetRef, ...], windows: tuple[str, ...]) -> tuple[int, ...]:
        if self._memory is not None:
            return self._memory.read(budgets, windows)
        if self._counts is not None:
            return await self._counts.budget_read(budgets, windows)
        storage = self.limiter.storage
        return tuple([await storage.get(_item(b).key_for(*_ids(b, w))) for b, w in zip(budgets, windows)])

    async def _add(
        self, budgets: tuple[BudgetRef, ...], windows: tuple[str, ...], amounts: tuple[int, ...], now: float
    ) -> None:
        if self._memory is not None:
            self._memory.add(budgets, windows, amounts, now)
            return
        if self._counts is not None:
            await self._counts.budget_add(budgets, windows, amounts, now)
            return
        for budget, name, amount in zip(budgets, windows, amounts):
            if amount:
                await self.strategy.hit(_item(budget), *_ids(budget, name), cost=amount)


def _key(budget, name: str) -> tuple[str, str, str]:
    return budget.key, budget.agent or "*", name


def _ids(budget: BudgetRef, name: str) -> tuple[str, ...]:
    return "firewall-budget", budget.key, budget.agent or "*", name


def read_shared(uri: str, budgets: list[tuple[str, str]], now: float) -> list[dict]:
    """For `firewall budgets` under `redis://`: every counter of the current window of each
    (key, period) budget, as {key, agent, window, used, resets_at}, read from the store itself."""
    import redis

    prefix = "LIMITS"  # the `limits` RedisStorage's key prefix (storage_uri passes no other)
    client = redis.Redis.from_url(uri, socket_timeout=2, socket_connect_timeout=2)
    found = []
    try:
        for key, period in budgets:
            name, end = window_id(period, now), window(period, now)[1]
            head = f"{prefix}:" + "/".join(("LIMITER", "firewall-budget", key, ""))
            tail = _item_for(period).key_for(name).removeprefix("LIMITER")  # /WINDOW/amount/span/granularity
            keys = [k.decode() for k in client.scan_iter(match=_glob(head) + "*" + _glob(tail), count=1000)]
            keys = [k for k in keys if k.startswith(head) and k.endswith(tail) and len(k) > len(head) + len(tail)]
            for k, value in zip(keys, client.mget(keys) if keys else []):
                if value is not None:
                    agent = k[len(head) : -len(tail)]
                    found.append({"key": key, "agent": agent, "window": name, "used": int(value), "resets_at": end})
    finally:
        client.close()
    return found


def _glob(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _item_for(period: str):  # -> limits.RateLimitItem
    item = _ITEMS.get(period)
    if item is None:
        from limits import RateLimitItemPerSecond

        item = _ITEMS[period] = RateLimitItemPerSecond(_NEVER_FULL, _SPAN[period] + _KEEP)
    return item


_ITEMS: dict[str, object] = {}


def _item(budget: BudgetRef):  # -> limits.RateLimitItem
    return _item_for(budget.period)
