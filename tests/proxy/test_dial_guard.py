"""No upstream connection without a live decision: pins expire, and the dial guard checks them
for every connection, address literals included (they never reach the pinned resolver)."""

from __future__ import annotations

import asyncio

import pytest
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import tflow

from firewall.proxy.addons.dial_guard import DialGuard
from firewall.proxy.resolver import Resolver, UncheckedDestination


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _dial(guard: DialGuard, host: str, port: int) -> str | None:
    server = tflow.tserver_conn()
    server.address = (host, port)
    server.error = None
    guard.server_connect(ServerConnectionHookData(server=server, client=tflow.tclient_conn()))
    return server.error


def test_a_pin_lets_its_host_and_port_be_dialled_and_nothing_else() -> None:
    resolver = Resolver(ttl=30, clock=Clock())
    guard = DialGuard(resolver)
    resolver.pin("api.example.com", 443, ("93.184.216.34",))
    assert _dial(guard, "api.example.com", 443) is None  # the control
    assert _dial(guard, "API.example.com.", 443) is None  # as a CONNECT may spell it
    assert _dial(guard, "api.example.com", 8443) is not None
    assert _dial(guard, "93.184.216.34", 443) is not None  # the address was not what was decided


@pytest.mark.parametrize("literal", ["127.0.0.1", "::1", "169.254.169.254", "10.0.0.1"])
def test_an_address_literal_is_dialled_only_when_decided(literal: str) -> None:
    resolver = Resolver(ttl=30, clock=Clock())
    guard = DialGuard(resolver)
    assert _dial(guard, literal, 6379) is not None
    resolver.pin(literal, 6379, (literal,))
    assert _dial(guard, literal, 6379) is None


def test_pins_expire_after_the_pin_ttl() -> None:
    clock = Clock()
    resolver = Resolver(ttl=0, pin_ttl=30, clock=clock)  # a pin outlives the lookup cache
    guard = DialGuard(resolver)
    resolver.pin("api.example.com", 443, ("93.184.216.34",))
    clock.now += 29.9
    assert _dial(guard, "api.example.com", 443) is None
    assert asyncio.run(resolver.pinned_getaddrinfo("api.example.com", 443))
    clock.now += 0.2
    assert _dial(guard, "api.example.com", 443) is not None
    with pytest.raises(UncheckedDestination):
        asyncio.run(resolver.pinned_getaddrinfo("api.example.com", 443))


def test_a_new_decision_renews_the_pin() -> None:
    clock = Clock()
    resolver = Resolver(ttl=30, clock=clock)
    resolver.pin("api.example.com", 443, ("93.184.216.34",))
    clock.now += 20
    resolver.pin("api.example.com", 443, ("93.184.216.35",))
    clock.now += 20
    assert resolver.pinned("api.example.com", 443) == ("93.184.216.35",)


def test_lookups_expire_after_the_ttl() -> None:
    clock = Clock()
    calls: list[str] = []

    async def dns(host, port, **_):
        calls.append(host)
        return [(2, 1, 6, "", ("93.184.216.34", port))]

    resolver = Resolver(ttl=30, getaddrinfo=dns, clock=clock)
    asyncio.run(resolver.lookup("api.example.com", 443))
    assert resolver.cached("api.example.com", 443) == ("93.184.216.34",)
    clock.now += 31
    assert resolver.cached("api.example.com", 443) is None
    asyncio.run(resolver.lookup("api.example.com", 443))
    assert calls == ["api.example.com", "api.example.com"]
