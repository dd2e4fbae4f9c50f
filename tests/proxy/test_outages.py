"""A repeated failure is said once, with a count now and then, and once when it ends; a limits
store that is gone refuses at once, without a traceback per request."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from firewall.policy import LimitRef
from firewall.proxy.limiter import Limiter, LimitsUnavailable
from firewall.proxy.outages import Outage
from tests.proxy.test_memory_limits import limit

log = logging.getLogger("test.outages")


def test_an_outage_is_said_once_reminded_with_a_count_and_ended_once(caplog) -> None:
    now = [0.0]
    changes = []
    outage = Outage(
        log,
        "reading the thing",
        remind=600,
        clock=lambda: now[0],
        on_change=lambda what, message: changes.append((what, message)),
    )
    with caplog.at_level(logging.INFO, logger="test.outages"):
        outage.ok()  # control: nothing failing, nothing said
        for _ in range(2401):  # ten minutes of a poll every 0.25 s
            outage.failed("it is damaged", consequence="keeping the old one")
            now[0] += 0.25
        outage.ok()
        outage.ok()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0].startswith("reading the thing failed: it is damaged; keeping the old one")
    assert lines[1].startswith("reading the thing still failing: 2401 time(s) in 600 s")
    assert lines[2].startswith("reading the thing works again, after 2401 failure(s) in 600")
    assert not any(r.exc_info for r in caplog.records)  # a known condition: no traceback
    assert changes == [("reading the thing", "it is damaged; keeping the old one"), ("reading the thing", None)]


def _limit() -> LimitRef:
    return limit(5)


def test_a_limits_store_that_is_gone_refuses_at_once_and_logs_once(caplog) -> None:
    limiter = Limiter("redis://127.0.0.1:1", timeout=0.25)  # nothing listens on port 1
    limits = (_limit(),)

    async def checks() -> list[float]:
        waits = []
        for _ in range(50):
            started = time.monotonic()
            with pytest.raises(LimitsUnavailable):
                await limiter.check(limits, time.time())
            waits.append(time.monotonic() - started)
        return waits

    with caplog.at_level(logging.INFO, logger="firewall.proxy"):
        waits = asyncio.run(checks())
    lines = [r for r in caplog.records if "counting limits" in r.getMessage()]
    assert len(lines) == 1 and not lines[0].exc_info, [r.getMessage() for r in lines]
    assert max(waits) < 0.5, max(waits)
    assert asyncio.run(Limiter("memory://").check(limits, time.time())).over is None  # control
