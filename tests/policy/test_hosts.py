import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firewall.policy.hosts import (
    DuplicatePattern,
    HostIndex,
    HostPattern,
    InvalidHost,
    normalize_host,
    parse_host_pattern,
)

PROPERTY = settings(max_examples=400, deadline=None)


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("api.openai.com", "api.openai.com"),
        ("  API.OpenAI.Com  ", "api.openai.com"),
        ("api.openai.com.", "api.openai.com"),
        ("localhost", "localhost"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("10.0.0.1.", "10.0.0.1"),
        ("0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("１２７.０.０.１", "127.0.0.1"),  # full-width digits become an address through IDNA
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[2001:DB8:0:0:0:0:0:1]", "2001:db8::1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("[::FFFF:7f00:1]", "127.0.0.1"),
    ],
)
def test_normalize_host(name, normal):
    assert normalize_host(name) == normal


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", 'invalid host name "": empty'),
        ("  ", 'invalid host name "  ": empty'),
        (".", 'invalid host name ".": empty'),
        ("ex ample.com", 'invalid host name "ex ample.com": each label must be 1 to 63 of a-z 0-9 - _'),
        ("a..b", 'invalid host name "a..b": each label must be 1 to 63 of a-z 0-9 - _'),
        ("a.com..", 'invalid host name "a.com..": each label must be 1 to 63 of a-z 0-9 - _'),
        ("*.a.com", 'invalid host name "*.a.com": each label must be 1 to 63 of a-z 0-9 - _'),
        ("a%2ecom", 'invalid host name "a%2ecom": each label must be 1 to 63 of a-z 0-9 - _'),
        ("a" * 64 + ".com", f'invalid host name "{"a" * 64}.com": each label must be 1 to 63 of a-z 0-9 - _'),
        ("a." * 127 + "com", f'invalid host name "{"a." * 127}com": longer than 253 characters'),
        ("1.2.3.4.5", 'invalid host name "1.2.3.4.5": not an IPv4 address'),
        ("256.0.0.1", 'invalid host name "256.0.0.1": not an IPv4 address'),
        ("1.2.3.256", 'invalid host name "1.2.3.256": not an IPv4 address'),
        ("1.16777216", 'invalid host name "1.16777216": not an IPv4 address'),
        ("4294967296", 'invalid host name "4294967296": not an IPv4 address'),
        ("08.0.0.1", 'invalid host name "08.0.0.1": not an IPv4 address'),
        ("0x", 'invalid host name "0x": not an IPv4 address'),
        ("0xg.0.0.1", 'invalid host name "0xg.0.0.1": not an IPv4 address'),
        ("1..1", 'invalid host name "1..1": not an IPv4 address'),
        ("example.123", 'invalid host name "example.123": not an IPv4 address'),
        ("[::1", 'invalid host name "[::1": not an IPv6 address'),
        ("[example.com]", 'invalid host name "[example.com]": not an IPv6 address'),
        ("1::2::3", 'invalid host name "1::2::3": not an IPv6 address'),
        ("fe80::1%eth0", 'invalid host name "fe80::1%eth0": an IPv6 zone is not allowed'),
        ("a\nb", 'invalid host name "a\\nb": each label must be 1 to 63 of a-z 0-9 - _'),
        ("\udcff.com", 'invalid host name "\udcff.com": not a valid international name'),
    ],
)
def test_invalid_host(name, message):
    with pytest.raises(InvalidHost) as caught:
        normalize_host(name)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "pattern", "canonical"),
    [
        ("api.openai.com", HostPattern("api.openai.com", False, None), "api.openai.com"),
        ("API.OpenAI.com.", HostPattern("api.openai.com", False, None), "api.openai.com"),
        ("*.githubusercontent.com", HostPattern("githubusercontent.com", True, None), "*.githubusercontent.com"),
        ("*.Example.COM:8443", HostPattern("example.com", True, 8443), "*.example.com:8443"),
        ("localhost:8443", HostPattern("localhost", False, 8443), "localhost:8443"),
        ("127.0.0.1:8443", HostPattern("127.0.0.1", False, 8443), "127.0.0.1:8443"),
        ("0x7f.1:8443", HostPattern("127.0.0.1", False, 8443), "127.0.0.1:8443"),
        ("[::1]:8443", HostPattern("::1", False, 8443), "[::1]:8443"),
        ("[::1]", HostPattern("::1", False, None), "[::1]"),
        ("[::ffff:127.0.0.1]", HostPattern("127.0.0.1", False, None), "127.0.0.1"),
        ("*", HostPattern("", True, None), "*"),
        ("*:8443", HostPattern("", True, 8443), "*:8443"),
        ("x.com:1", HostPattern("x.com", False, 1), "x.com:1"),
        ("x.com:65535", HostPattern("x.com", False, 65535), "x.com:65535"),
    ],
)
def test_parse_host_pattern(text, pattern, canonical):
    parsed = parse_host_pattern(text)
    assert parsed == pattern
    assert str(parsed) == canonical
    assert parse_host_pattern(canonical) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "api*.x.com",
            'invalid host pattern "api*.x.com": wildcard must be a whole leading label, as in "*.example.com"',
        ),
        ("a.*.com", 'invalid host pattern "a.*.com": wildcard must be a whole leading label, as in "*.example.com"'),
        ("**.x.com", 'invalid host pattern "**.x.com": wildcard must be a whole leading label, as in "*.example.com"'),
        (
            "*.*.x.com",
            'invalid host pattern "*.*.x.com": wildcard must be a whole leading label, as in "*.example.com"',
        ),
        ("*.10.0.0.1", 'invalid host pattern "*.10.0.0.1": a wildcard needs a domain name, not an address'),
        ("x.com:0", 'invalid host pattern "x.com:0": port must be a number from 1 to 65535'),
        ("x.com:65536", 'invalid host pattern "x.com:65536": port must be a number from 1 to 65535'),
        ("x.com:", 'invalid host pattern "x.com:": port must be a number from 1 to 65535'),
        ("x.com:+80", 'invalid host pattern "x.com:+80": port must be a number from 1 to 65535'),
        ("x.com:８０", 'invalid host pattern "x.com:８０": port must be a number from 1 to 65535'),
        ("::1", 'invalid host pattern "::1": write an IPv6 address in brackets, as in "[::1]:8443"'),
        ("[::1", 'invalid host pattern "[::1": write an IPv6 address as "[::1]" or "[::1]:8443"'),
        ("[::1]8443", 'invalid host pattern "[::1]8443": write an IPv6 address as "[::1]" or "[::1]:8443"'),
        ("[::1]:0", 'invalid host pattern "[::1]:0": port must be a number from 1 to 65535'),
        ("*.", 'invalid host name "": empty'),
        ("ex ample.com", 'invalid host name "ex ample.com": each label must be 1 to 63 of a-z 0-9 - _'),
    ],
)
def test_invalid_host_pattern(text, message):
    with pytest.raises(InvalidHost) as caught:
        parse_host_pattern(text)
    assert str(caught.value) == message


def test_ports():
    assert parse_host_pattern("x.com").ports() == (80, 443)
    assert parse_host_pattern("x.com:8443").ports() == (8443,)


def _index(*patterns: str) -> HostIndex[str]:
    return HostIndex((parse_host_pattern(p), p) for p in patterns)


@pytest.mark.parametrize(
    ("patterns", "host", "port", "found"),
    [
        (["api.x.com", "*.x.com"], "api.x.com", 443, "api.x.com"),
        (["api.x.com", "*.x.com"], "web.x.com", 443, "*.x.com"),
        (["*.x.com"], "a.b.c.x.com", 80, "*.x.com"),
        (["*.x.com"], "x.com", 443, None),
        (["*.x.com"], "ax.com", 443, None),
        (["*.x.com", "*.b.x.com"], "a.b.x.com", 443, "*.b.x.com"),
        (["*.x.com", "*.b.x.com"], "a.c.x.com", 443, "*.x.com"),
        (["*.com", "*.x.com"], "a.x.com", 443, "*.x.com"),
        (["*", "*.x.com"], "a.x.com", 443, "*.x.com"),
        (["*", "*.x.com"], "y.com", 80, "*"),
        (["*", "x.com"], "x.com", 8443, None),
        (["*:8443", "x.com"], "x.com", 8443, "*:8443"),
        (["x.com"], "x.com", 80, "x.com"),
        (["x.com"], "x.com", 8443, None),
        (["x.com", "x.com:8443"], "x.com", 8443, "x.com:8443"),
        (["localhost:8443"], "localhost", 443, None),
        (["127.0.0.1:8443"], "127.0.0.1", 8443, "127.0.0.1:8443"),
        (["[::1]:8443"], "::1", 8443, "[::1]:8443"),
        (["*"], "127.0.0.1", 443, "*"),
        ([], "x.com", 443, None),
    ],
)
def test_lookup(patterns, host, port, found):
    assert _index(*patterns).lookup(host, port) == found


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("a.com", "A.com."),
        ("a.com", "a.com:443"),
        ("a.com:80", "a.com"),
        ("*.a.com", "*.a.com:80"),
        ("*", "*:443"),
        ("127.0.0.1", "2130706433"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
    ],
)
def test_duplicate_pattern(first, second):
    with pytest.raises(DuplicatePattern) as caught:
        _index(first, second)
    assert caught.value.pattern == parse_host_pattern(second)
    assert (caught.value.first_value, caught.value.second_value) == (first, second)


@pytest.mark.parametrize(
    ("first", "second", "host_of_second", "port_of_second"),
    [
        ("a.com", "a.com:8443", "a.com", 8443),
        ("a.com", "*.a.com", "x.a.com", 443),
        ("*", "*:8443", "x.com", 8443),
        ("*.a.com", "*.b.a.com", "x.b.a.com", 443),
    ],
)
def test_patterns_that_do_not_overlap(first, second, host_of_second, port_of_second):
    assert _index(first, second).lookup(host_of_second, port_of_second) == second


# --- Property: lookup equals a brute-force scan -------------------------------

_LABELS = ["a", "b", "c"]
_PORTS = [None, 80, 443, 8443]
_NAMES = st.lists(st.sampled_from(_LABELS), min_size=1, max_size=3).map(".".join)
_PATTERNS = st.one_of(
    st.builds(HostPattern, _NAMES, st.booleans(), st.sampled_from(_PORTS)),
    st.builds(HostPattern, st.just(""), st.just(True), st.sampled_from(_PORTS)),
)


def _claims(pattern: HostPattern) -> set[tuple[str, bool, int]]:
    return {(pattern.name, pattern.wildcard, port) for port in pattern.ports()}


def _reference_lookup(entries: list[tuple[HostPattern, int]], host: str, port: int) -> int | None:
    exact = [
        value for pattern, value in entries if not pattern.wildcard and pattern.name == host and port in pattern.ports()
    ]
    if exact:
        return exact[0]
    wildcards = [
        (len(pattern.name), value)
        for pattern, value in entries
        if pattern.wildcard and port in pattern.ports() and (pattern.name == "" or host.endswith("." + pattern.name))
    ]
    return max(wildcards)[1] if wildcards else None


@PROPERTY
@given(
    patterns=st.lists(_PATTERNS, max_size=8),
    queries=st.lists(st.tuples(st.lists(st.sampled_from(_LABELS), min_size=1, max_size=4).map(".".join),
                               st.sampled_from([80, 443, 8443, 22])), min_size=1, max_size=5),
)  # fmt: skip
def test_lookup_equals_brute_force(patterns, queries):
    entries = list(zip(patterns, range(len(patterns))))
    claims = [claim for pattern in patterns for claim in _claims(pattern)]
    if len(claims) != len(set(claims)):
        with pytest.raises(DuplicatePattern):
            HostIndex(entries)
        return
    index = HostIndex(entries)
    for host, port in queries:
        assert index.lookup(host, port) == _reference_lookup(entries, host, port)


# --- Property: spelling variants normalise to one name ------------------------

_HOST_NAMES = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=10), min_size=1, max_size=4
).map(lambda labels: ".".join(labels) + ".com")


@st.composite
def _spelling_variant(draw, name: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    cased = "".join(c.upper() if flip else c for c, flip in zip(name, flips))
    dot = draw(st.sampled_from(["", "."]))
    space = draw(st.sampled_from(["", " ", "\t"]))
    return space + cased + dot + space


@PROPERTY
@given(st.data(), _HOST_NAMES)
def test_spelling_variants_of_a_name_normalise_to_it(data, name):
    assert normalize_host(data.draw(_spelling_variant(name))) == normalize_host(name) == name


def _inet_aton_spelling(value: int, base: str) -> str:
    return {"decimal": str(value), "octal": "0" + format(value, "o"), "hex": "0x" + format(value, "x")}[base]


@PROPERTY
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.data())
def test_inet_aton_spellings_normalise_to_dotted_decimal(address, part_count, data):
    octets = address.to_bytes(4, "big")
    leading = list(octets[: part_count - 1])
    last = int.from_bytes(octets[part_count - 1 :], "big")
    bases = st.sampled_from(["decimal", "octal", "hex"])
    spelled = ".".join(_inet_aton_spelling(number, data.draw(bases)) for number in [*leading, last])
    spelled = data.draw(_spelling_variant(spelled))
    assert normalize_host(spelled) == str(ipaddress.IPv4Address(address))


@PROPERTY
@given(st.integers(0, 2**128 - 1), st.sampled_from(["compressed", "exploded"]), st.booleans(), st.booleans())
def test_ipv6_spellings_normalise_to_one(value, form, upper, bracketed):
    address = ipaddress.IPv6Address(value)
    spelled = getattr(address, form)
    spelled = spelled.upper() if upper else spelled
    spelled = f"[{spelled}]" if bracketed else spelled
    expected = str(address.ipv4_mapped) if address.ipv4_mapped else address.compressed
    assert normalize_host(spelled) == expected
