"""The engine's step 2 on the destination (engine.py): its one spelling, whether what the request
claims (a Host header, `:authority`, TLS SNI) names it, and which non-public addresses a policy
lets a request reach. Pure: the addresses are given, never looked up."""

from __future__ import annotations

from functools import lru_cache

from firewall.policy.addresses import AddressClass, classify
from firewall.policy.compiled import CompiledPolicy
from firewall.policy.hosts import InvalidHost, normalize_host


# Agents send many requests to few hosts: remember the last few thousand spellings.
# (What raises, raises every time: exceptions are not cached.)
@lru_cache(maxsize=4096)
def normalized(host: str) -> str:
    return normalize_host(host)


def same_destination(claim: str, host: str, port: int) -> bool:
    """Whether "host[:port]" (a Host header, :authority or SNI) names host:port."""
    name, claimed_port = claim, None
    bracket = claim.rfind("]")
    colon = claim.rfind(":")
    if colon > bracket and claim.count(":") == 1 or (colon > bracket and claim.startswith("[")):
        name, port_text = claim[:colon], claim[colon + 1 :]
        if not port_text.isdigit():
            return False
        claimed_port = int(port_text)
    try:
        if normalized(name) != host:
            return False
    except InvalidHost:
        return False
    return claimed_port is None or claimed_port == port


def first_private(addresses: tuple[str, ...]) -> AddressClass | None:
    """The first of these addresses that is not public."""
    for text in addresses:
        found = classify(text)
        if not found.public:
            return found
    return None


def exempt(policy: CompiledPolicy, host: str, port: int, found: AddressClass) -> bool:
    """A host block naming host:port exactly allows its non-public address. A link-local address
    (cloud metadata at 169.254.169.254, fe80::/10, or an IPv6 form embedding one) must be named
    as the address itself: a name that resolves there is a rebinding attack, not a service."""
    if not policy.names_exactly(host, port):
        return False
    return not found.link_local or _names_address(host, found.address)


def _names_address(host: str, address: str) -> bool:
    """Whether a normalised host is `address` (an IPv4-mapped one being its IPv4 address)."""
    try:
        return host == normalized(address)
    except InvalidHost:  # an address with a zone: no host names it
        return False
