"""Counting requests against the limits a decision names: moving windows.

`memory://` (default) keeps counts in this process, in `MemoryWindows`, or, in a worker
of a proxy of several (firewall/proxy/supervisor.py), in the supervisor's count service
(firewall/proxy/counts.py), which runs the same `MemoryWindows` for every worker;
`redis://host:port` shares them between proxies, through the `limits` library.
A request over any of its limits uses up none of them.

A shared store that does not answer within `timeout` (default 250 ms, `proxy start
--limits-timeout`), or fails, makes `check` raise `LimitsUnavailable` at once: the
request is refused (fail closed) rather than held for as long as the store is stuck.
The outage is logged once, and once when it ends (firewall/proxy/outages.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from firewall.policy import LimitRef
from firewall.policy.decision import PERIOD_SECONDS
from firewall.proxy.outages import Outage
from firewall.proxy.settings import LIMITS_TIMEOUT

if TYPE_CHECKING:
    from firewall.proxy.counts import CountClient

log = logging.getLogger("firewall.proxy")
_ITEMS: dict = {}  # period -> the `limits` item class, filled on first use


class LimiterConfigError(ValueError):
    pass


class LimitsUnavailable(Exception):
    """The shared limits store did not answer in time, or failed: the request cannot be counted."""


@dataclass(frozen=True)
class LimitOutcome:
    over: LimitRef | None  # the first limit the request is over, or None
    retry_after: int  # seconds until that limit has room again


def storage_uri(uri: str, timeout: float = LIMITS_TIMEOUT) -> tuple[str, dict]:
    """Map a user's URI to the `limits` async storage URI and its options."""
    if uri.startswith("memory://"):
        return "async+memory://", {}
    if uri.startswith(("redis://", "rediss://")):
        # The redis client's own bounds (options `limits` passes on to redis.asyncio.Redis): no wait on a
        # socket longer than `timeout`, and no retries with back-off, which would outlast it.
        return "async+" + uri, {
            "implementation": "redispy",
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": None,
        }
    raise LimiterConfigError(f"limits storage {uri!r} is not supported; use memory:// or redis://HOST:PORT[/DB]")


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
    def __init__(
        self,
        uri: str = "memory://",
        *,
        timeout: float = LIMITS_TIMEOUT,
        on_problem: Callable[[str, str | None], None] | None = None,
        counts: CountClient | None = None,
    ):
        if not timeout > 0:
            raise LimiterConfigError(f"the limits timeout must be a positive number of seconds, not {timeout}")
        async_uri, options = storage_uri(uri, timeout)
        self.uri = uri
        self.timeout = timeout
        self.counts = counts if uri.startswith("memory://") else None
        where = "the supervisor's count service" if self.counts is not None else uri
        self.outage = Outage(log, f"counting limits in {where}", on_change=on_problem)
        self.memory = MemoryWindows() if uri.startswith("memory://") and self.counts is None else None
        if self.memory is not None or self.counts is not None:
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

            _ITEMS.update(
                second=RateLimitItemPerSecond,
                minute=RateLimitItemPerMinute,
                hour=RateLimitItemPerHour,
                day=RateLimitItemPerDay,
            )
        return _ITEMS[limit.period](limit.amount)

    @staticmethod
    def _ids(limit: LimitRef) -> tuple[str, ...]:
        return ("firewall", limit.key, limit.agent or "*")

    async def check(self, limits: tuple[LimitRef, ...], now: float) -> LimitOutcome:
        """Count the request against every limit, unless it is over one of them.

        Raises LimitsUnavailable when a shared store does not answer within `timeout`, or fails."""
        if self.memory is not None:
            return self.memory.check(limits, now)
        if not limits:
            return LimitOutcome(None, 0)
        try:
            async with asyncio.timeout(self.timeout):
                outcome = await self._check_shared(limits, now)
        except TimeoutError:
            self.outage.failed(
                f"no answer within {self.timeout * 1000:.0f} ms",
                consequence="limited requests are refused with 503 limits_unavailable",
            )
            raise LimitsUnavailable(f"the limits store did not answer within {self.timeout * 1000:.0f} ms") from None
        except Exception as exc:  # the store's client failed (connection refused, reset, ...)
            detail = f"{type(exc).__name__}: {exc}"
            self.outage.failed(detail, consequence="limited requests are refused with 503 limits_unavailable")
            raise LimitsUnavailable(f"the limits store failed ({detail})") from None
        self.outage.ok()
        return outcome

    async def _check_shared(self, limits: tuple[LimitRef, ...], now: float) -> LimitOutcome:
        if self.counts is not None:
            over, retry_after = await self.counts.limit_check(limits, now)
            return LimitOutcome(None if over is None else limits[over], retry_after)
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
        if self.counts is not None:
            await self.counts.connect()
            return
        if not await self.storage.check():
            raise LimiterConfigError(f"limits storage {self.uri!r} cannot be reached")
