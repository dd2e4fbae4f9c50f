"""DNS for the proxy: resolve once, decide on those addresses, connect only to them.

`lookup()` resolves a destination for the decision. After the engine allows a
request, `pin()` records the addresses it was allowed with. The event loop's
`getaddrinfo` is replaced by `pinned_getaddrinfo`, so when mitmproxy opens
the upstream connection it gets exactly the pinned addresses, and a name
nobody checked cannot be connected to at all. A name that resolves
differently on a second lookup (DNS rebinding) therefore changes nothing.

An address literal never reaches `getaddrinfo` (asyncio connects to it
directly), so the proxy also checks `pinned()` before every upstream connection
(addons/dial_guard.py). Lookups and pins expire: the system resolver does not
tell a record's TTL, so a lookup is reused for `ttl` seconds and a pin lasts
`pin_ttl` seconds (30 each), a bound on how long an address may be dialled
after the decision that allowed it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

LOOKUP_TTL = 30.0
PIN_TTL = 30.0
MAX_PINS = 10_000  # past this many pins (or lookups), the expired ones are dropped


def dial_name(host: str) -> str:
    """The spelling of a host that lookups and pins are kept under."""
    return host.lower().rstrip(".")


class UncheckedDestination(OSError):
    pass


class Resolver:
    def __init__(self, ttl: float = LOOKUP_TTL, getaddrinfo=None, clock=time.monotonic, pin_ttl: float = PIN_TTL):
        """`ttl`: how long a lookup is reused; `pin_ttl`: how long a pin lets the proxy dial;
        `getaddrinfo`: an async callable like `loop.getaddrinfo` for `lookup` to ask
        (default: the event loop's own, as it was before `install`); `clock`: seconds, for expiry."""
        self.ttl = ttl
        self.pin_ttl = pin_ttl
        self.clock = clock
        self._lookups: dict[tuple[str, int], tuple[float, tuple[str, ...]]] = {}
        self._pins: dict[tuple[str, int], tuple[float, tuple[str, ...]]] = {}  # -> (expires, addresses)
        self._real_getaddrinfo = getaddrinfo

    async def lookup(self, host: str, port: int) -> tuple[str, ...]:
        """The addresses `host` resolves to now (cached for `ttl` seconds)."""
        host = dial_name(host)
        try:
            ipaddress.ip_address(host)
            return (host,)
        except ValueError:
            pass
        key = (host, port)
        cached = self._lookups.get(key)
        now = self.clock()
        if cached and now - cached[0] < self.ttl:
            return cached[1]
        getaddrinfo = self._real_getaddrinfo or asyncio.get_running_loop().getaddrinfo
        infos = await getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = tuple(dict.fromkeys(info[4][0] for info in infos))
        if len(self._lookups) > MAX_PINS:
            self._lookups = {k: hit for k, hit in self._lookups.items() if now - hit[0] < self.ttl}
        self._lookups[key] = (now, addresses)
        return addresses

    def cached(self, host: str, port: int) -> tuple[str, ...] | None:
        """What `lookup` would return now without resolving anything, or None."""
        host = dial_name(host)
        hit = self._lookups.get((host, port))
        if hit is not None and self.clock() - hit[0] < self.ttl:
            return hit[1]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
        return (host,)

    def pin(self, host: str, port: int, addresses: tuple[str, ...]) -> None:
        """Let the proxy connect to `host:port`, at these addresses only, for the next `pin_ttl` seconds."""
        now = self.clock()
        if len(self._pins) > MAX_PINS:
            self._pins = {key: pin for key, pin in self._pins.items() if pin[0] > now}
        self._pins[(dial_name(host), port)] = (now + self.pin_ttl, addresses)

    def pinned(self, host: str, port: int) -> tuple[str, ...] | None:
        """The addresses a decision let the proxy connect to for `host:port`, unless expired."""
        pin = self._pins.get((dial_name(host), port))
        if pin is None or pin[0] <= self.clock():
            return None
        return pin[1]

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Route every name resolution of `loop` through the pins."""
        self._real_getaddrinfo = self._real_getaddrinfo or loop.getaddrinfo
        loop.getaddrinfo = self.pinned_getaddrinfo  # type: ignore[method-assign]

    async def pinned_getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        addresses = self.pinned(name, int(port))
        if addresses is None:
            raise UncheckedDestination(f"{name}:{port} was not checked by the firewall; refusing to connect")
        infos = []
        for address in addresses:
            ip = ipaddress.ip_address(address)
            if ip.version == 4 and family in (0, socket.AF_INET):
                infos.append((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port))))
            elif ip.version == 6 and family in (0, socket.AF_INET6):
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port), 0, 0)))
        if not infos:
            raise UncheckedDestination(f"{name}:{port} has no checked address of the requested family")
        return infos
