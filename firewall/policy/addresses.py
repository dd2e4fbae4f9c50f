"""Which IP addresses are public, the only ones a destination may reach without a host block naming it.

An IPv4 address is public unless it is in an entry of the IANA IPv4 Special-Purpose Address
Registry or is multicast. An IPv6 address is public only inside 2000::/3 (the one range IANA
allocates as global unicast; the rest of the space is reserved, so nothing an upstream could be at)
and outside every entry of the IANA IPv6 Special-Purpose Address Registry. Every entry counts, the
ones the registry marks globally reachable too (AS112, AMT, anycast, ORCHIDv2): none is where an
agent's API lives, and refusing is the side to err on.

An IPv6 address may embed an IPv4 address that the packet really goes to (a NAT64 translator,
a 6to4 relay, a Teredo client, the host's own IPv4 stack). Each such form is unwrapped and the
embedded address classified too. Every one of these prefixes is itself special-purpose or outside
2000::/3, so an embedding form is never public whatever it embeds: an IPv6-only host behind DNS64
reaches an IPv4-only service only through a host block naming it exactly. What the embedded address
adds is the stricter link-local rule: an address that is, or embeds, a link-local address
(cloud metadata) may only be reached when a host block names that address itself.

The one exception is IPv4-mapped ::ffff:a.b.c.d: not a route to a translator but the socket API's
spelling of the IPv4 address a.b.c.d itself (the kernel sends IPv4), so it is classified as
a.b.c.d, as host names are (hosts.py) and as Python's own `is_global` does.

Pure: no I/O. The tables are data transcribed from the registries (see REGISTRIES_AS_OF).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

IPv4 = ipaddress.IPv4Address
IPv6 = ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The IANA IPv4 Special-Purpose Address Registry (every entry through RFC 8880, 2020) and IANA IPv6
# Special-Purpose Address Registry (every entry through RFC 9780's 100:0:0:1::/64, 2025), as of
# 2026-12. An entry IANA adds later goes here, with its RFC.
REGISTRIES_AS_OF = "2026-12: IPv4 entries through RFC 8880 (2020), IPv6 entries through RFC 9780 (2025)"


@dataclass(frozen=True)
class Special:
    """One registry entry (or multicast, which has registries of its own)."""

    network: Network
    name: str
    rfc: str

    def __str__(self) -> str:
        return f"{self.network} {self.name}"


def _entries(*rows: tuple[str, str, str]) -> tuple[Special, ...]:
    return tuple(Special(ipaddress.ip_network(prefix), name, rfc) for prefix, name, rfc in rows)


# Both registries and multicast in one table: an address is looked up in all of them at once.
SPECIAL = _entries(
    # IANA IPv4 Special-Purpose Address Registry
    ("0.0.0.0/8", '"this network"', "RFC 791"),
    ("0.0.0.0/32", '"this host on this network"', "RFC 1122"),
    ("10.0.0.0/8", "private-use", "RFC 1918"),
    ("100.64.0.0/10", "shared address space", "RFC 6598"),
    ("127.0.0.0/8", "loopback", "RFC 1122"),
    ("169.254.0.0/16", "link-local", "RFC 3927"),
    ("172.16.0.0/12", "private-use", "RFC 1918"),
    ("192.0.0.0/24", "IETF protocol assignments", "RFC 6890"),
    ("192.0.0.0/29", "IPv4 service continuity prefix", "RFC 7335"),
    ("192.0.0.8/32", "IPv4 dummy address", "RFC 7600"),
    ("192.0.0.9/32", "port control protocol anycast", "RFC 7723"),
    ("192.0.0.10/32", "TURN anycast", "RFC 8155"),
    ("192.0.0.170/32", "NAT64/DNS64 discovery", "RFC 8880"),
    ("192.0.0.171/32", "NAT64/DNS64 discovery", "RFC 8880"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"),
    ("192.31.196.0/24", "AS112-v4", "RFC 7535"),
    ("192.52.193.0/24", "AMT", "RFC 7450"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526"),
    ("192.168.0.0/16", "private-use", "RFC 1918"),
    ("192.175.48.0/24", "direct delegation AS112 service", "RFC 7534"),
    ("198.18.0.0/15", "benchmarking", "RFC 2544"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737"),
    ("240.0.0.0/4", "reserved", "RFC 1112"),
    ("255.255.255.255/32", "limited broadcast", "RFC 8190"),
    # IANA IPv6 Special-Purpose Address Registry
    ("::1/128", "loopback", "RFC 4291"),
    ("::/128", "unspecified", "RFC 4291"),
    ("::ffff:0:0/96", "IPv4-mapped", "RFC 4291"),
    ("64:ff9b::/96", "NAT64 well-known prefix", "RFC 6052"),
    ("64:ff9b:1::/48", "NAT64 local-use prefix", "RFC 8215"),
    ("100::/64", "discard-only", "RFC 6666"),
    ("100:0:0:1::/64", "dummy IPv6 prefix", "RFC 9780"),
    ("2001::/23", "IETF protocol assignments", "RFC 2928"),
    ("2001::/32", "Teredo", "RFC 4380"),
    ("2001:1::1/128", "port control protocol anycast", "RFC 7723"),
    ("2001:1::2/128", "TURN anycast", "RFC 8155"),
    ("2001:1::3/128", "DNS-SD service registration protocol anycast", "RFC 9665"),
    ("2001:2::/48", "benchmarking", "RFC 5180"),
    ("2001:3::/32", "AMT", "RFC 7450"),
    ("2001:4:112::/48", "AS112-v6", "RFC 7535"),
    ("2001:10::/28", "deprecated ORCHID", "RFC 4843"),
    ("2001:20::/28", "ORCHIDv2", "RFC 7343"),
    ("2001:30::/28", "drone remote ID entity tags", "RFC 9374"),
    ("2001:db8::/32", "documentation", "RFC 3849"),
    ("2002::/16", "6to4", "RFC 3056"),
    ("2620:4f:8000::/48", "direct delegation AS112 service", "RFC 7534"),
    ("3fff::/20", "documentation", "RFC 9637"),
    ("5f00::/16", "segment routing (SRv6) SIDs", "RFC 9602"),
    ("fc00::/7", "unique-local", "RFC 4193"),
    ("fe80::/10", "link-local", "RFC 4291"),
    # multicast, which has registries of its own
    ("224.0.0.0/4", "multicast", "RFC 5771"),
    ("ff00::/8", "multicast", "RFC 4291"),
)

IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")  # IANA IPv6 Address Space registry
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))

# Most specific entry first, so an address is described by the narrowest entry holding it.
_SPECIAL = sorted(SPECIAL, key=lambda entry: -entry.network.prefixlen)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT "IPv4-translated", RFC 2765
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible, RFC 4291


@dataclass(frozen=True)
class AddressClass:
    """`address`: as parsed (an IPv6 zone kept); `why`: empty when public, else what makes it not
    public; `link_local`: it is, has a zone, or embeds a link-local address (the stricter rule)."""

    address: str
    public: bool
    link_local: bool
    why: str = ""


def special_entry(address: IPv4 | IPv6) -> Special | None:
    """The narrowest registry (or multicast) entry that holds `address`, or None."""
    for entry in _SPECIAL:
        if entry.network.version == address.version and address in entry.network:
            return entry
    return None


@dataclass(frozen=True)
class Embedding:
    """An IPv4 address an IPv6 address carries, and the form that carries it."""

    form: str
    ipv4: IPv4


def embedded_ipv4(address: IPv6) -> tuple[Embedding, ...]:
    """Every IPv4 address that `address` carries in one of the forms that embed one."""
    value = int(address)
    low = IPv4(value & 0xFFFFFFFF)
    if address in _MAPPED:
        return (Embedding("IPv4-mapped ::ffff:0:0/96", low),)
    if address in _TRANSLATED:
        return (Embedding(f"SIIT IPv4-translated {_TRANSLATED}", low),)
    if address in _COMPATIBLE and value > 1:  # :: and ::1 are themselves
        return (Embedding(f"IPv4-compatible {_COMPATIBLE}", low),)
    if address in _NAT64:
        return (Embedding(f"NAT64 {_NAT64}", low),)
    if address in _NAT64_LOCAL:
        # RFC 6052 section 2.2: where the IPv4 address sits depends on the operator's prefix
        # length, which only the operator knows; every position a /48 allows is a candidate.
        return tuple(
            Embedding(f"NAT64 local-use {_NAT64_LOCAL} (as a /{length})", _rfc6052(value, length))
            for length in (48, 56, 64, 96)
        )
    if address.sixtofour is not None:
        return (Embedding("6to4 2002::/16", address.sixtofour),)
    if address.teredo is not None:
        server, client = address.teredo  # the client's address is stored bit-inverted; Python undoes it
        return (Embedding("Teredo 2001::/32 (server)", server), Embedding("Teredo 2001::/32 (client)", client))
    return ()


def _rfc6052(value: int, prefix_length: int) -> IPv4:
    """The IPv4 address in an RFC 6052 IPv4-embedded IPv6 address, skipping bits 64-71 (the "u" octet)."""
    bits = format(value, "0128b")
    if prefix_length == 96:
        return IPv4(int(bits[96:], 2))
    around_u = bits[prefix_length:64] + bits[72:]
    return IPv4(int(around_u[:32], 2))


@lru_cache(maxsize=4096)
def classify(text: str) -> AddressClass:
    """The class of an address written as text ("10.0.0.1", "fe80::1%eth0"). Text that is not an
    address is not public (and takes the link-local rule, so nothing exempts it)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return AddressClass(text, False, True, "it is not an IP address")
    if isinstance(address, IPv6) and address.scope_id:
        return AddressClass(str(address), False, True, f"the zone %{address.scope_id} makes it an address of one link")
    if isinstance(address, IPv4):
        entry = special_entry(address)
        if entry is None:
            return AddressClass(str(address), True, False)
        return AddressClass(str(address), False, _is_link_local(address), str(entry))
    return _classify_ipv6(address)


def _classify_ipv6(address: IPv6) -> AddressClass:
    if address.ipv4_mapped is not None:
        # The one wrapper that is only a spelling: a socket given ::ffff:a.b.c.d sends IPv4 to a.b.c.d
        # (RFC 4291 2.5.5.2; never seen on the wire), so it is that address, as hosts.py reads it.
        inner = classify(str(address.ipv4_mapped))
        why = f"{inner.why}, as IPv4-mapped ::ffff:0:0/96" if inner.why else ""
        return AddressClass(str(address), inner.public, inner.link_local, why)
    entry = special_entry(address)
    embeds = embedded_ipv4(address)
    wrapped_classes = [(embedding, classify(str(embedding.ipv4))) for embedding in embeds]
    link_local = _is_link_local(address) or any(found.link_local for _, found in wrapped_classes)
    if entry is not None:
        why = str(entry)
    elif address not in IPV6_GLOBAL_UNICAST:
        why = f"outside {IPV6_GLOBAL_UNICAST}, the only range IANA allocates as global unicast"
    elif embeds:  # not reached with today's tables: every embedding prefix is special-purpose
        why = "it embeds an IPv4 address"
    else:
        return AddressClass(str(address), True, False)
    wrapped = [
        f"wrapping {embedding.ipv4} as {embedding.form}" + ("" if found.public else f": {found.why}")
        for embedding, found in wrapped_classes
    ]
    return AddressClass(str(address), False, link_local, "; ".join([why, *wrapped]))


def _is_link_local(address: IPv4 | IPv6) -> bool:
    return any(address.version == network.version and address in network for network in LINK_LOCAL)
