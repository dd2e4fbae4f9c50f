"""The in-process moving windows (`memory://`) count like the `limits` library's moving window."""

from __future__ import annotations

import asyncio
import time

import pytest
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from firewall.policy import LimitRef, RuleRef
from firewall.proxy.limiter import Limiter, MemoryWindows

SOURCE = RuleRef("test.policy", 3, "limit 3 per minute")


def limit(amount: int = 3, period: str = "minute", key: str = "k1", agent: str | None = None) -> LimitRef:
    return LimitRef(key, amount, period, agent, SOURCE)


def test_allows_amount_hits_then_refuses_until_the_oldest_leaves_the_window():
    windows = MemoryWindows()
    for i in range(3):
        assert windows.check((limit(),), 1000.0 + i).over is None
    refused = windows.check((limit(),), 1010.0)
    assert refused.over == limit()
    assert refused.retry_after == 50  # the first hit (at 1000) leaves the window at 1060
    assert windows.check((limit(),), 1060.5).over is None  # 1000 has left: room for one
    assert windows.check((limit(),), 1060.6).over == limit()


def test_a_request_over_one_limit_uses_up_none_of_them():
    windows = MemoryWindows()
    small, large = limit(1, key="small"), limit(100, key="large")
    assert windows.check((large, small), 0.0).over is None
    for t in range(1, 5):
        assert windows.check((large, small), float(t)).over == small
    assert len(windows._hits[("large", "*", 100, "minute")]) == 1


def test_counters_are_per_agent_and_per_key():
    windows = MemoryWindows()
    assert windows.check((limit(1, agent="a"),), 0.0).over is None
    assert windows.check((limit(1, agent="b"),), 0.0).over is None
    assert windows.check((limit(1, key="other"),), 0.0).over is None
    assert windows.check((limit(1, agent="a"),), 1.0).over is not None


def test_zero_allows_nothing_and_says_a_whole_period():
    outcome = MemoryWindows().check((limit(0, period="second"),), 5.0)
    assert (outcome.over, outcome.retry_after) == (limit(0, period="second"), 1)


def test_sweep_drops_idle_counters():
    windows = MemoryWindows()
    windows.check((limit(period="second"),), 100.0)
    windows.check((limit(key="other"),), 100.0)
    windows.check((), 100.0 + MemoryWindows.SWEEP_INTERVAL + 1)
    assert list(windows._hits) == []


@pytest.mark.parametrize("amount,item", [(5, RateLimitItemPerSecond), (7, RateLimitItemPerMinute)])
def test_same_answers_as_the_limits_library(amount, item):
    """Hits at the same times get the same allow/refuse answers from both."""

    async def run():
        library = MovingWindowRateLimiter(MemoryStorage())
        windows = MemoryWindows()
        ours, theirs = [], []
        for _ in range(amount + 3):
            now = time.time()
            ours.append(windows.check((limit(amount, period=item.GRANULARITY.name),), now).over is None)
            theirs.append(await library.hit(item(amount), "k"))
        return ours, theirs

    ours, theirs = asyncio.run(run())
    assert ours == theirs == [True] * amount + [False] * 3


def test_limiter_memory_uri_uses_the_in_process_windows():
    limiter = Limiter("memory://")
    assert limiter.memory is not None
    outcome = asyncio.run(limiter.check((limit(1),), 0.0))
    assert outcome.over is None
    assert asyncio.run(limiter.check((limit(1),), 1.0)).over == limit(1)
    asyncio.run(limiter.check_storage())
