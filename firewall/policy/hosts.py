"""Host names, host patterns, and the index that finds a request's host block.

A request belongs to at most one host block: an exact name beats a wildcard,
a longer wildcard beats a shorter one, and the catch-all "*" comes last.
`*.example.com` matches any name below example.com, at any depth, but not
example.com itself. A pattern without a port matches ports 80 and 443.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

import idna

_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_MAX_NAME_LENGTH = 253
_DEFAULT_PORTS = (80, 443)


class InvalidHost(ValueError):
    """A host name or host pattern that is not well formed."""


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def normalize_host(name: str) -> str:
    """The one spelling of a host: lower case, no trailing dot, IDNA names as
    punycode, IPv4 addresses dotted-decimal, IPv6 addresses compressed.

    IPv4 is read the way inet_aton (and so curl and C libraries) reads it:
    "2130706433", "0177.0.0.1", "0x7f.1" are all 127.0.0.1. An IPv4-mapped
    IPv6 address is its IPv4 address, so one policy entry covers both.
    """
    host = name.strip().lower()
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise InvalidHost(f"invalid host name {_quoted(name)}: empty")
    if host.startswith("[") and host.endswith("]"):
        return _normalize_ipv6(host[1:-1], name)
    if ":" in host:
        return _normalize_ipv6(host, name)
    if not host.isascii():
        host = _to_punycode(host, name)
    if len(host) > _MAX_NAME_LENGTH:
        raise InvalidHost(f"invalid host name {_quoted(name)}: longer than {_MAX_NAME_LENGTH} characters")
    if _ends_in_number(host):
        return _normalize_ipv4(host, name)
    if not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise InvalidHost(f"invalid host name {_quoted(name)}: each label must be 1 to 63 of a-z 0-9 - _")
    return host


def is_address(host: str) -> bool:
    """Whether a normalised host is an IP address rather than a name."""
    return ":" in host or _ends_in_number(host)


def _ends_in_number(host: str) -> bool:
    # As browsers decide: a name whose last label is a number is an IPv4
    # address or nothing, so "1.2.3.999" can never be looked up as a name.
    return _NUMERIC_LABEL.fullmatch(host.rpartition(".")[2]) is not None


def _to_punycode(host: str, name: str) -> str:
    # IDNA 2008 with UTS #46 mapping, as browsers and curl (libidn2) do: "faß.de" is
    # xn--fa-hia.de, not the fass.de of Python's own IDNA 2003 codec.
    try:
        return idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise InvalidHost(f"invalid host name {_quoted(name)}: not a valid international name") from None


def _normalize_ipv6(text: str, name: str) -> str:
    if "%" in text:
        raise InvalidHost(f"invalid host name {_quoted(name)}: an IPv6 zone is not allowed")
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise InvalidHost(f"invalid host name {_quoted(name)}: not an IPv6 address") from None
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return address.compressed


def _normalize_ipv4(host: str, name: str) -> str:
    """inet_aton: 1 to 4 parts, each decimal, 0-octal or 0x-hex; the last part fills the remaining bytes."""
    invalid = InvalidHost(f"invalid host name {_quoted(name)}: not an IPv4 address")
    parts = host.split(".")
    if len(parts) > 4:
        raise invalid
    numbers = [number for part in parts if (number := _inet_aton_number(part)) is not None]
    if len(numbers) < len(parts):
        raise invalid
    *leading, last = numbers
    if any(number > 0xFF for number in leading) or last >= 256 ** (5 - len(parts)):
        raise invalid
    value = last
    for index, number in enumerate(leading):
        value += number << (24 - 8 * index)
    return str(ipaddress.IPv4Address(value))


def _inet_aton_number(part: str) -> int | None:
    if re.fullmatch(r"0x[0-9a-f]+", part):
        return int(part[2:], 16)
    if re.fullmatch(r"0[0-7]*", part):
        return int(part, 8)
    if re.fullmatch(r"[1-9][0-9]*", part):
        return int(part)
    return None


@dataclass(frozen=True)
class HostPattern:
    name: str  # normalised; for a wildcard the suffix without "*."; "" for the catch-all "*"
    wildcard: bool
    port: int | None  # None = ports 80 and 443

    def __str__(self) -> str:
        if self.wildcard:
            host = f"*.{self.name}" if self.name else "*"
        elif ":" in self.name:
            host = f"[{self.name}]"
        else:
            host = self.name
        return host if self.port is None else f"{host}:{self.port}"

    def ports(self) -> tuple[int, ...]:
        return _DEFAULT_PORTS if self.port is None else (self.port,)


def parse_host_pattern(text: str) -> HostPattern:
    """`api.openai.com`, `*.example.com`, `localhost:8443`, `[::1]:8443`, `*`, `*:8443`."""
    host, port = _split_port(text.strip(), text)
    if host == "*":
        return HostPattern("", True, port)
    wildcard = host.startswith("*.")
    suffix = host[2:] if wildcard else host
    if "*" in suffix:
        raise InvalidHost(
            f'invalid host pattern {_quoted(text)}: wildcard must be a whole leading label, as in "*.example.com"'
        )
    name = normalize_host(suffix)
    if wildcard and is_address(name):
        raise InvalidHost(f"invalid host pattern {_quoted(text)}: a wildcard needs a domain name, not an address")
    return HostPattern(name, wildcard, port)


def _split_port(pattern: str, text: str) -> tuple[str, int | None]:
    if pattern.startswith("["):
        host, bracket, rest = pattern.partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise InvalidHost(f'invalid host pattern {_quoted(text)}: write an IPv6 address as "[::1]" or "[::1]:8443"')
        return host + bracket, _parse_port(rest[1:], text) if rest else None
    if pattern.count(":") > 1:
        raise InvalidHost(
            f'invalid host pattern {_quoted(text)}: write an IPv6 address in brackets, as in "[::1]:8443"'
        )
    host, colon, port = pattern.partition(":")
    return host, _parse_port(port, text) if colon else None


def _parse_port(port: str, text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise InvalidHost(f"invalid host pattern {_quoted(text)}: port must be a number from 1 to 65535")
    return int(port)


class DuplicatePattern(ValueError):
    """Two entries of a `HostIndex` claim the same host on the same port."""

    def __init__(self, pattern: HostPattern, first_value: object, second_value: object):
        super().__init__(f"host pattern {_quoted(str(pattern))} overlaps an earlier one on the same host and port")
        self.pattern = pattern
        self.first_value = first_value
        self.second_value = second_value


class HostIndex[T]:
    """Finds the value of the one pattern a (host, port) belongs to, in
    O(number of labels): exact names in one dict, wildcards by suffix in another.
    """

    def __init__(self, entries: Iterable[tuple[HostPattern, T]]):
        self._exact: dict[tuple[str, int], T] = {}
        self._wildcard: dict[tuple[str, int], T] = {}  # the catch-all "*" has suffix ""
        for pattern, value in entries:
            table = self._wildcard if pattern.wildcard else self._exact
            for port in pattern.ports():
                key = (pattern.name, port)
                if key in table:
                    raise DuplicatePattern(pattern, table[key], value)
                table[key] = value

    def lookup(self, host: str, port: int) -> T | None:
        """The value for a normalised host, or None when no pattern matches."""
        if (host, port) in self._exact:
            return self._exact[(host, port)]
        dot = host.find(".")
        while dot >= 0:  # suffixes from longest to shortest
            if (key := (host[dot + 1 :], port)) in self._wildcard:
                return self._wildcard[key]
            dot = host.find(".", dot + 1)
        return self._wildcard.get(("", port))
