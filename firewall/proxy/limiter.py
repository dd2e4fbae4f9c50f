"""Counting requests against the limits a decision names: moving windows.

`memory://` (default) keeps counts in this process, in `MemoryWindows`;
`redis://host:port` shares them between proxies, through the `limits` library.
A request over any of its limits uses up none of them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from firewall.policy import LimitRef
from firewall.policy.decision import PERIOD_SECONDS

_ITEMS: dict = {}  # period -> the `limits` item class, filled on first use

class LimiterConfigError(ValueError):
    pass


@dataclass(frozen=True)
class LimitOutcome:
    over: LimitRef | None  # the first limit the request is over, or None
    retry_after: int  # seconds until that limit has room again


def storage_uri(uri: str) -> tuple[str, dict]:
    """Map a user's URI to the `limits` async storage URI and its options."""
    if uri.startswith("memory://"):
        return "async+memory://", {}
    if uri.startswith(("redis://", "rediss://")):
        return "async+" + uri, {"implementation": "redispy"}
    raise LimiterConfigError(
        f"limits storage {uri!r} is not supported; use memory:// or redis://HOST:PORT[/DB]"
    )


class MemoryWindows:
    """Moving windows kept in this process: the hit times of each counter, oldest first.

    The same rule as the `limits` library's moving window (a request is allowed while
    fewer than `amount` hits fall in the last `period`; the retry-after is when the
    oldest of them leaves it), without its per-hit expiry task, which hands work to a
    worker thread on every request. Runs on the event loop only.
    """

    SWEEP_INTERVAL = 60.0  # seconds between drops of counters nobody hit for a whole period

    def __init__(self) -> None:
        self._hits: dict[tuple[str, str, int, str], deque[float]] = {}
        self._swept = 0.0

    def check(self, limits: tuple[LimitRef, ...], now: float) -> LimitOutcome:
        if now - self._swept > self.SWEEP_INTERVAL:
            self._sweep(now)
        windows = []
        for limit in limits:
            span = PERIOD_SECONDS[limit.period]
            key = (limit.key, limit.agent or "*", limit.amount, limit.period)
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque()
            cutoff = now - span
            while hits and hits[0] <= cutoff:
                hits.popleft()
            if len(hits) >= limit.amount:  # full: room again when the oldest hit leaves the window
                oldest = hits[0] if hits else now
                return LimitOutcome(limit, max(1, math.ceil(oldest + span - now)))
            windows.append(hits)
        for hits in windows:
            hits.append(now)
        return LimitOutcome(None, 0)

    def _sweep(self, now: float) -> None:
        self._swept = now
        for key, hits in list(self._hits.items()):
            cutoff = now - PERIOD_SECONDS[key[3]]
            while hits and hits[0] <= cutoff:
                hits.popleft()
            if not hits:
                del self._hits[key]


class Limiter:
    def __init__(self, uri: str = "memory://"):
        async_uri, options = storage_uri(uri)
        self.uri = uri
        self.memory = MemoryWindows() if uri.startswith("memory://") else None
        if self.memory is not None:
            return
        from limits.aio.strategies import MovingWindowRateLimiter
        from limits.storage import storage_from_string

        try:
            self.storage = storage_from_string(async_uri, **options)
        except Exception as exc:  # the library raises its own config errors for bad URIs
            raise LimiterConfigError(f"limits storage {uri!r}: {exc}") from exc
        self.strategy = MovingWindowRateLimiter(self.storage)

    @staticmethod
    def _item(limit: LimitRef):
        if not _ITEMS:  # `limits` is imported only for a shared storage
            from limits import RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute, RateLimitItemPerSecond

            _ITEMS.update(second=RateLimitItemPerSecond, minute=RateLimitItemPerMinute,
                          hour=RateLimitItemPerHour, day=RateLimitItemPerDay)
        return _ITEMS[limit.period](limit.amount)

    @staticmethod
    def _ids(limit: LimitRef) -> tuple[str, ...]:
        return ("firewall", limit.key, limit.agent or "*")

    async def check(self, limits: tuple[LimitRef, ...], now: float) -> LimitOutcome:
        """Count the request against every limit, unless it is over one of them."""
        if self.memory is not None:
            return self.memory.check(limits, now)
        for limit in limits:
            if not await self.strategy.test(self._item(limit), *self._ids(limit)):
                return LimitOutcome(limit, await self._retry_after(limit, now))
        for limit in limits:
            if not await self.strategy.hit(self._item(limit), *self._ids(limit)):
                # Another request took the last slot between test and hit.
                return LimitOutcome(limit, await self._retry_after(limit, now))
        return LimitOutcome(None, 0)

    async def _retry_after(self, limit: LimitRef, now: float) -> int:
        stats = await self.strategy.get_window_stats(self._item(limit), *self._ids(limit))
        return max(1, math.ceil(stats.reset_time - now))

    async def check_storage(self) -> None:
        """Fail at start-up, not per request, when the storage cannot be reached."""
        if self.memory is not None:
            return
        if not await self.storage.check():
            raise LimiterConfigError(f"limits storage {self.uri!r} cannot be reached")
