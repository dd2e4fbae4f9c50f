"""Properties: a random spelling of a path or host decides as its canonical form does, or is blocked.

At the engine over thousands of generated spellings; then a smaller sample sent through the real
proxy, whose behaviour (passed on with exactly the canonical path, or refused) must match what the
engine decides for the canonical form under the very policy the proxy runs.
"""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from firewall.policy import Request, Verdict, compile_source, decide
from firewall.policy.hosts import InvalidHost, normalize_host
from firewall.policy.paths import AmbiguousPath, canonicalize
from tests.security.conftest import CORPUS_POLICY
from tests.security.support import request_bytes

ENGINE = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THROUGH_PROXY = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)

POLICY = compile_source("""
default block
host api.example.com {
    block /admin/**
    block /v1/files/**
    allow GET /v1/**, /public/*
    allow POST /v1/chat/completions
}
host *.example.org {
    allow GET /static/**
}
host 93.184.216.34 {
    allow GET
}
host 169.254.169.254 {
    allow GET /latest/meta-data/instance-id
}
host localhost:8443 {
    allow
}
""").policy

PIECES = [
    "v1",
    "admin",
    "files",
    "models",
    "public",
    "static",
    "latest",
    "meta-data",
    "instance-id",
    "",
    ".",
    "..",
    "%2e",
    "%2E",
    "%2e%2e",
    ".%2E",
    "%2f",
    "%2F",
    "%5c",
    "\\",
    "%00",
    "%41",
    "%61dmin",
    "%25",
    "%252e",
    "%25%32%66",
    ";",
    ";x=1",
    "%3b",
    "%c0%ae",
    "%e0%80%ae",
    "%C3%A9",
    "é",
    "~",
    "%7E",
    "#frag",
    "?q=1",
    "%3f",
    "*",
    "%20",
    " ",
    "%zz",
    "%",
    "ADMIN",
    "V1",
    "\t",
]
paths = st.lists(st.sampled_from(PIECES), max_size=7).map(lambda parts: "/" + "/".join(parts))
methods = st.sampled_from(["GET", "POST", "DELETE"])


def _outcome(decision):
    return decision.verdict, decision.reason, decision.rule


def _decide(host: str, port: int, target: str, method: str = "GET"):
    return decide(POLICY, Request(method, "https", host, port, target), 0.0)


@ENGINE
@given(paths, methods, st.sampled_from(["api.example.com", "cdn.example.org", "93.184.216.34", "169.254.169.254"]))
@example("/v1/%2e%2e/admin/x", "GET", "api.example.com")
@example("/public/a%2f..%2f..%2fadmin", "GET", "api.example.com")
def test_a_path_decides_as_its_canonical_form_or_is_blocked(target, method, host):
    decision = _decide(host, 443, target, method)
    try:
        canonical = canonicalize(target)
    except AmbiguousPath:
        assert decision.verdict is Verdict.BLOCK
        return
    canonical_target = canonical.path + (f"?{canonical.query}" if canonical.query else "")
    assert canonicalize(canonical_target) == canonical  # one canonical form: canonicalising is idempotent
    again = _decide(host, 443, canonical_target, method)
    assert decision.verdict is Verdict.BLOCK or _outcome(decision) == _outcome(again)
    assert decision.canonical_path == canonical.path


# ---- hosts ----

LOOKALIKES = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "i": "і"}  # Cyrillic


@st.composite
def name_spellings(draw):
    base = draw(
        st.sampled_from(
            ["api.example.com", "cdn.example.org", "a.b.example.org", "example.org", "evil.example.net", "localhost"]
        )
    )
    chars = [c.upper() if c.isalpha() and draw(st.booleans()) else c for c in base]
    if draw(st.integers(0, 4)) == 0:  # a look-alike letter
        at = draw(st.sampled_from([i for i, c in enumerate(base) if c in LOOKALIKES] or [0]))
        chars[at] = LOOKALIKES.get(base[at], base[at])
    return "".join(chars) + draw(st.sampled_from(["", "."]))


@st.composite
def address_spellings(draw, values=None):
    """One IPv4 address written any way inet_aton reads it, or as an IPv4-mapped IPv6 address."""
    value = draw(
        st.sampled_from(values)
        if values
        else (st.sampled_from([0x5DB8D822, 0xA9FEA9FE, 0x7F000001, 0x0A000001, 0x08080808]) | st.integers(0, 2**32 - 1))
    )
    octets = list(value.to_bytes(4, "big"))
    form = draw(st.sampled_from(["dotted", "number", "octal", "hex", "two", "three", "mapped", "mapped-hex"]))
    if form == "dotted":
        return ".".join(map(str, octets))
    if form == "number":
        return str(value)
    if form == "octal":
        return ".".join(f"0{o:o}" for o in octets)
    if form == "hex":
        return ".".join(draw(st.sampled_from([f"0x{o:x}", f"0X{o:X}"])) for o in octets)
    if form == "two":
        return f"{octets[0]}.{value & 0xFFFFFF}"
    if form == "three":
        return f"{octets[0]}.{octets[1]}.{value & 0xFFFF}"
    if form == "mapped":
        return f"[::ffff:{'.'.join(map(str, octets))}]"
    return f"[{ipaddress.IPv6Address(0xFFFF00000000 | value)}]"


ports = st.sampled_from([443, 80, 8443, 8080])


@ENGINE
@given(name_spellings() | address_spellings() | st.text(max_size=20), ports, paths)
@example("0xa9.0xfe.0xa9.0xfe", 80, "/latest/meta-data/instance-id")
@example("API.EXAMPLE.COM.", 443, "/v1/models")
def test_a_host_decides_as_its_canonical_form_or_is_blocked(host, port, target):
    decision = _decide(host, port, target)
    try:
        canonical = normalize_host(host)
    except InvalidHost:
        assert decision.verdict is Verdict.BLOCK
        return
    assert normalize_host(canonical) == canonical
    again = _decide(canonical, port, target)
    assert decision.verdict is Verdict.BLOCK or _outcome(decision) == _outcome(again)


@ENGINE
@given(address_spellings(), ports)
def test_every_spelling_of_an_address_is_that_address(host, port):
    canonical = normalize_host(host)
    assert _outcome(_decide(host, port, "/")) == _outcome(_decide(canonical, port, "/"))
    assert ipaddress.ip_address(canonical).version == 4


# ---- through the real proxy ----


@THROUGH_PROXY
@given(paths)
@example("/v1/%2e%2e/admin/x")
@example("/v1/./models")
def test_through_the_proxy_a_path_is_passed_on_canonical_or_refused(corpus, target):
    target = target.replace("\t", "%09").replace(" ", "%20")  # raw, they would end the request line
    policy = compile_source(CORPUS_POLICY.format(hostile=corpus.hostile.port, upstream=corpus.upstream.port)).policy
    decision = decide(policy, Request("GET", "https", "localhost", corpus.upstream.port, target), 0.0)
    before = len(corpus.upstream.seen)
    reply = corpus.agent.https(corpus.api, request_bytes("GET", target, corpus.api))
    reached = [seen.path for seen in corpus.upstream.seen[before:]]
    if decision.verdict is Verdict.ALLOW:
        canonical = canonicalize(target)
        assert reached == [canonical.path + (f"?{canonical.query}" if canonical.query else "")]
        assert reply.status == 200
    else:
        assert reached == [] and reply.status in (400, 403)


@st.composite
def loopback_spellings(draw):
    """Spellings of this machine's loopback: the name the policy names exactly, or addresses no block names."""
    if draw(st.booleans()):
        return "".join(c.upper() if draw(st.booleans()) else c for c in "localhost") + draw(st.sampled_from(["", "."]))
    return draw(address_spellings(values=[0x7F000001, 0x7F000101, 0x7F7F7F7F]))


@THROUGH_PROXY
@given(loopback_spellings())
@example("LocalHost.")
@example("2130706433")
def test_through_the_proxy_a_host_spelling_decides_as_its_canonical_form_or_is_refused(corpus, host):
    policy = compile_source(CORPUS_POLICY.format(hostile=corpus.hostile.port, upstream=corpus.upstream.port)).policy
    port = corpus.upstream.port
    canonical = normalize_host(host)
    expected = decide(policy, Request("GET", "https", canonical, port, "/v1/models", addresses=("127.0.0.1",)), 0.0)
    target = f"{host}:{port}"
    before = len(corpus.upstream.seen)
    sni = None if host.startswith("[") else host
    reply = corpus.agent.https(target, request_bytes("GET", "/v1/models", target), sni=sni)
    passed = len(corpus.upstream.seen) - before == 1 and reply.status == 200
    assert passed == (expected.verdict is Verdict.ALLOW)
    assert passed or reply.status == 403
