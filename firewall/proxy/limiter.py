"""Counting requests against the limits a decision names, with the `limits` library.

`memory://` (default) keeps counts in this process; `redis://host:port` shares
them between proxies. A request over any of its limits uses up none of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from limits import RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from firewall.policy import LimitRef

_ITEMS = {
    "second": RateLimitItemPerSecond,
    "minute": RateLimitItemPerMinute,
    "hour": RateLimitItemPerHour,
    "day": RateLimitItemPerDay,
}


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


class Limiter:
    def __init__(self, uri: str = "memory://"):
        async_uri, options = storage_uri(uri)
        try:
            self.storage = storage_from_string(async_uri, **options)
        except Exception as exc:  # the library raises its own config errors for bad URIs
            raise LimiterConfigError(f"limits storage {uri!r}: {exc}") from exc
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.uri = uri

    @staticmethod
    def _item(limit: LimitRef):
        return _ITEMS[limit.period](limit.amount)

    @staticmethod
    def _ids(limit: LimitRef) -> tuple[str, ...]:
        return ("firewall", limit.key, limit.agent or "*")

    async def check(self, limits: tuple[LimitRef, ...], now: float) -> LimitOutcome:
        """Count the request against every limit, unless it is over one of them."""
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
        if not await self.storage.check():
            raise LimiterConfigError(f"limits storage {self.uri!r} cannot be reached")
