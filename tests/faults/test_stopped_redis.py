"""A Redis that stops answering (SIGSTOP) must not hold limited requests: past the limits
timeout (250 ms) each is refused at once with 503 limits_unavailable (fail closed), requests
without a limit go on, the outage is logged once and its end once, and every request has
exactly one audit row. Control: the same load before the stop and after SIGCONT is served."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.support import LoadClient, check_nothing_lost, hammer, log_lines, proxy_status

pytestmark = pytest.mark.faults

POLICY = """\
host localhost:{port} {{
    limit 100000 per minute GET /limited
    allow GET /limited, /free
}}
"""
THREADS, PER_THREAD = 8, 12
BOUND = 2.0  # seconds any client may wait while Redis is stopped (250 ms to give up, plus a busy machine)


def test_a_stopped_redis_refuses_limited_requests_at_once_and_recovers(
    firewall, upstream, upstream_ca_file, redis_server
):
    firewall.apply(POLICY.format(port=upstream.port))
    firewall.run(
        "proxy",
        "start",
        "--port",
        "0",
        "--upstream-ca",
        str(upstream_ca_file),
        "--limits-storage",
        redis_server.url,
        check=True,
    )
    try:
        load = LoadClient(firewall, proxy_status(firewall)["port"], upstream)
        paths = ["/limited", "/free"]

        before = hammer(load, paths, THREADS, PER_THREAD)  # control: Redis answers
        assert {(a.status, a.error) for a in before} == {(200, None)}, before[:3]

        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            stopped = hammer(load, paths, THREADS, PER_THREAD)
            during = proxy_status(firewall)["problems"]
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        limited = [a for a in stopped if a.path == "/limited"]
        free = [a for a in stopped if a.path == "/free"]
        assert {(a.status, a.error) for a in limited} == {(503, "limits_unavailable")}
        assert {(a.status, a.error) for a in free} == {(200, None)}  # no limit, no Redis: served
        assert [p["what"] for p in during] == [f"counting limits in {redis_server.url}"]

        deadline = time.monotonic() + 10  # Redis works through what queued while it was stopped
        with load.client() as client:
            while load.get(client, "/limited").status != 200:
                assert time.monotonic() < deadline, "limited requests were not served again after SIGCONT"
                time.sleep(0.1)
        after = hammer(load, paths, THREADS, PER_THREAD)  # control: served again
        assert {(a.status, a.error) for a in after} == {(200, None)}
        assert proxy_status(firewall)["problems"] == []
    finally:
        firewall.run("proxy", "stop", timeout=30)

    check_nothing_lost(firewall, upstream, before, "redis control (before SIGSTOP)", BOUND)
    figures = check_nothing_lost(firewall, upstream, stopped, "redis stopped (SIGSTOP)", BOUND)
    check_nothing_lost(firewall, upstream, after, "redis control (after SIGCONT)", BOUND)
    assert figures["reached upstream"] == len(free)
    failed = log_lines(firewall, "counting limits in redis://")
    assert len([line for line in failed if " failed: " in line]) == 1, failed  # once per outage, not per request
    assert len([line for line in failed if "works again, after" in line]) == 1, failed
    assert not log_lines(firewall, "Traceback")
