"""DNS for the proxy: resolve once, decide on those addresses, connect only to them.

`lookup()` resolves a destination for the decision. After the engine allows a
request, `pin()` records the addresses it was allowed with. The event loop's
`getaddrinfo` is replaced by `pinned_getaddrinfo`, so when mitmproxy opens
the upstream connection it gets exactly the pinned addresses, and a name
nobody checked cannot be connected to at all. A name that resolves
differently on a second lookup (DNS rebinding) therefore changes nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

LOOKUP_TTL = 30.0


class UncheckedDestination(OSError):
    pass


class Resolver:
    def __init__(self, ttl: float = LOOKUP_TTL, getaddrinfo=None):
        """`getaddrinfo`: an async callable like `loop.getaddrinfo` for `lookup` to ask
        (default: the event loop's own, as it was before `install`)."""
        self.ttl = ttl
        self._lookups: dict[tuple[str, int], tuple[float, tuple[str, ...]]] = {}
        self._pins: dict[tuple[str, int], tuple[str, ...]] = {}
        self._real_getaddrinfo = getaddrinfo

    async def lookup(self, host: str, port: int) -> tuple[str, ...]:
        """The addresses `host` resolves to now (cached for `ttl` seconds)."""
        try:
            ipaddress.ip_address(host)
            return (host,)
        except ValueError:
            pass
        key = (host, port)
        cached = self._lookups.get(key)
        now = time.monotonic()
        if cached and now - cached[0] < self.ttl:
            return cached[1]
        getaddrinfo = self._real_getaddrinfo or asyncio.get_running_loop().getaddrinfo
        infos = await getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = tuple(dict.fromkeys(info[4][0] for info in infos))
        self._lookups[key] = (now, addresses)
        return addresses

    def cached(self, host: str, port: int) -> tuple[str, ...] | None:
        """What `lookup` would return now without resolving anything, or None."""
        hit = self._lookups.get((host, port))
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
        return (host,)

    def pin(self, host: str, port: int, addresses: tuple[str, ...]) -> None:
        self._pins[(host, port)] = addresses

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Route every name resolution of `loop` through the pins."""
        self._real_getaddrinfo = self._real_getaddrinfo or loop.getaddrinfo
        loop.getaddrinfo = self.pinned_getaddrinfo  # type: ignore[method-assign]

    async def pinned_getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        key = (name.lower().rstrip("."), int(port))
        addresses = self._pins.get(key)
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
