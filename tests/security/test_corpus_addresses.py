"""Adversarial corpus, address classes: IPv6 forms that embed an IPv4 address, and the special-purpose
ranges that no destination under a wildcard or catch-all may reach.

Found as holes on main (issue 10, section 3; reproduced here): `[64:ff9b::7f00:1]` (NAT64),
`[::7f00:1]` (IPv4-compatible), `[::ffff:0:7f00:1]` (SIIT) and a name resolving to
`64:ff9b::a9fe:a9fe` (NAT64 of the metadata address) were dialled as public, because Python's
`is_global` calls them global. Fixed by firewall/policy/addresses.py: every IANA special-purpose
entry is not public, every embedding form is unwrapped, and an embedded link-local address keeps
the link-local rule.

Three levels, each attack with a benign control of the same shape: the engine with the addresses a
lookup gave, the proxy's own decide-then-resolve step with a scripted DNS (no real DNS here, and
/etc/hosts must not be edited), and the real proxy for IP literals.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from firewall.policy import Reason, Request, Verdict, compile_source, decide
from firewall.proxy.deciding import decide_with_addresses
from firewall.proxy.resolver import Resolver, UncheckedDestination
from tests.security.support import Agent, mint_token, proxy_ca, request_bytes
from tests.security.test_corpus_hosts import FakeDNS
from tests.support.fixtures import Firewall, RunningProxy
from tests.support.upstream import Upstream, start_upstream

POLICY = compile_source("""
default block
host api.example.com {
    allow GET
}
host *.example.org {
    allow GET
}
host [64:ff9b::a9fe:a9fe] {
    allow GET /latest/meta-data/instance-id
}
host 169.254.169.254 {
    allow GET
}
""").policy

# Each wraps 127.0.0.1, 10.0.0.5 or 169.254.169.254 (metadata) in an IPv6 form that reaches it.
LOOPBACK_FORMS = [
    "64:ff9b::7f00:1",
    "::7f00:1",
    "::ffff:0:7f00:1",
    "::ffff:7f00:1",
    "64:ff9b:1::7f00:1",
    "2002:7f00:1::1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",
]
PRIVATE_FORMS = ["64:ff9b::a00:5", "::a00:5", "::ffff:0:a00:5", "2002:a00:5::1"]
METADATA_FORMS = [
    "64:ff9b::a9fe:a9fe",
    "::a9fe:a9fe",
    "::ffff:0:a9fe:a9fe",
    "::ffff:a9fe:a9fe",
    "64:ff9b:1::a9fe:a9fe",
    "2002:a9fe:a9fe::1",
    "2001:0:4136:e378:8000:63bf:5601:5601",
]
SPECIAL = [
    "192.0.0.9",
    "192.31.196.1",
    "192.52.193.1",
    "192.88.99.1",
    "192.175.48.1",
    "198.18.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "100::1",
    "100:0:0:1::1",
    "2001:1::1",
    "2001:20::1",
    "2001:db8::1",
    "3fff::1",
    "5f00::1",
    "2620:4f:8000::1",
    "4000::1",
    "fec0::1",
    "fe80::1%eth0",
    "2606:4700::1111%eth0",
]
PUBLIC = ["93.184.216.34", "2606:4700::1111", "2a00:1450:4001:80b::200e"]


def decided(host: str, addresses: tuple[str, ...] = (), port: int = 443, target: str = "/"):
    decision = decide(POLICY, Request("GET", "https", host, port, target, addresses=addresses), 0.0)
    return decision.verdict, decision.reason


# ---- the engine ----


@pytest.mark.parametrize("address", LOOPBACK_FORMS + PRIVATE_FORMS + METADATA_FORMS + SPECIAL)
def test_a_wildcard_name_resolving_to_a_wrapped_or_special_address_is_refused(address):
    assert decided("files.example.org", (address,)) == (Verdict.BLOCK, Reason.PRIVATE_ADDRESS)
    assert decided("files.example.org", PUBLIC) == (Verdict.ALLOW, Reason.RULE)  # the control


NAMED = ("64:ff9b::a9fe:a9fe", "::ffff:a9fe:a9fe")  # POLICY names these (the second as 169.254.169.254)


@pytest.mark.parametrize(
    "address", [a for a in LOOPBACK_FORMS + PRIVATE_FORMS + METADATA_FORMS + SPECIAL if a not in NAMED]
)
def test_an_address_literal_of_that_kind_no_block_names_is_refused(address):
    if "%" in address:  # a zone in a host is no host at all
        assert decided(f"[{address}]") == (Verdict.BLOCK, Reason.INVALID_HOST)
        return
    assert decided(f"[{address}]" if ":" in address else address) == (Verdict.BLOCK, Reason.PRIVATE_ADDRESS)
    for control in PUBLIC:  # the same shape, a public address: no block names it, so the default decides
        assert decided(f"[{control}]" if ":" in control else control) == (Verdict.BLOCK, Reason.DEFAULT_NO_HOST)


@pytest.mark.parametrize("address", METADATA_FORMS + ["fe80::1%eth0"])
def test_a_name_named_exactly_never_reaches_a_wrapped_link_local_address(address):
    """An exact host block may reach its private address (an internal service, or an IPv4-only service
    behind NAT64), but not a link-local one, wrapped or not: that is a rebinding attack."""
    assert decided("api.example.com", (address,)) == (Verdict.BLOCK, Reason.PRIVATE_ADDRESS)


@pytest.mark.parametrize("address", LOOPBACK_FORMS + PRIVATE_FORMS + ["64:ff9b::5db8:d822", "2002:5db8:d822::1"])
def test_control_a_name_named_exactly_reaches_a_wrapped_non_link_local_address(address):
    assert decided("api.example.com", (address,)) == (Verdict.ALLOW, Reason.RULE)


def test_control_the_wrapped_metadata_address_named_as_itself_is_reached():
    assert decided("[64:ff9b::a9fe:a9fe]", (), target="/latest/meta-data/instance-id") == (Verdict.ALLOW, Reason.RULE)
    assert decided("[64:ff9b::a9fe:a9fe]", (), port=8080) == (Verdict.BLOCK, Reason.PRIVATE_ADDRESS)


def test_control_the_ipv4_mapped_spelling_is_the_ipv4_address():
    """::ffff:a.b.c.d is a.b.c.d on the wire: the named metadata address in that spelling (as the proxy
    passes a CONNECT literal on as the address it dials) is reached; another name is not."""
    assert decided("169.254.169.254", ("::ffff:a9fe:a9fe",)) == (Verdict.ALLOW, Reason.RULE)
    assert decided("api.example.com", ("::ffff:a9fe:a9fe",)) == (Verdict.BLOCK, Reason.PRIVATE_ADDRESS)
    assert decided("files.example.org", ("::ffff:5db8:d822",)) == (Verdict.ALLOW, Reason.RULE)
    assert decided("files.example.org", ("::ffff:a00:5",)) == (Verdict.BLOCK, Reason.PRIVATE_ADDRESS)


# ---- the proxy's decide-then-resolve step, with a scripted DNS ----


def _through_resolver(answer: tuple[str, ...], host: str = "files.example.org"):
    resolver = Resolver(ttl=0, getaddrinfo=FakeDNS(answer))
    request = Request("GET", "https", host, 443, "/")
    decision, addresses = asyncio.run(decide_with_addresses(POLICY, request, resolver, 0.0))
    if decision.verdict is Verdict.ALLOW:
        resolver.pin(host, 443, addresses)
    return decision, resolver


def test_a_name_resolving_to_nat64_of_the_metadata_address_is_refused_and_never_pinned():
    """The issue's reproduction: a name whose AAAA is 64:ff9b::a9fe:a9fe."""
    decision, resolver = _through_resolver(("64:ff9b::a9fe:a9fe",))
    assert (decision.verdict, decision.reason) == (Verdict.BLOCK, Reason.PRIVATE_ADDRESS)
    assert "169.254.169.254" in decision.message
    with pytest.raises(UncheckedDestination):
        asyncio.run(resolver.pinned_getaddrinfo("files.example.org", 443))


@pytest.mark.parametrize("answer", [("2606:4700::1111",), ("93.184.216.34", "2606:4700::1111")])
def test_control_a_name_resolving_to_public_addresses_is_allowed_and_pinned(answer):
    decision, resolver = _through_resolver(answer)
    assert (decision.verdict, decision.reason) == (Verdict.ALLOW, Reason.RULE)
    infos = asyncio.run(resolver.pinned_getaddrinfo("files.example.org", 443))
    assert tuple(info[4][0] for info in infos) == answer


@pytest.mark.parametrize(
    "answer", [("2606:4700::1111", "64:ff9b::7f00:1"), ("::7f00:1",), ("::ffff:0:7f00:1",), ("fe80::1%eth0",)]
)
def test_one_wrapped_address_among_public_ones_is_enough_to_refuse(answer):
    decision, _ = _through_resolver(answer)
    assert (decision.verdict, decision.reason) == (Verdict.BLOCK, Reason.PRIVATE_ADDRESS)


# ---- the real proxy: IP literals, which need no DNS ----

PROXY_POLICY = """
default block
host 127.0.0.1:{port} {{          # named exactly: this private address may be reached
    allow GET
}}
host *:{port} {{                  # any other host on the port: must not reach a private address
    allow GET
}}
"""


@dataclass(frozen=True)
class LiteralCase:
    attack: str
    target: str  # the CONNECT target as the agent writes it
    refused: str | None  # the audit reason of the 403, "bad_request" (400), or None: reaches the upstream


def _cases(port: int) -> list[LiteralCase]:
    return [
        # the controls: the loopback upstream, named exactly, in the spellings that are its address
        LiteralCase("control: the address named exactly", f"127.0.0.1:{port}", None),
        LiteralCase("control: its IPv4-mapped spelling", f"[::ffff:127.0.0.1]:{port}", None),
        LiteralCase("control: its IPv4-mapped spelling in hex", f"[::ffff:7f00:1]:{port}", None),
        # the attacks: other IPv6 forms that carry 127.0.0.1, which the policy does not name
        LiteralCase("NAT64 well-known prefix", f"[64:ff9b::7f00:1]:{port}", "private_address"),
        LiteralCase("NAT64 local-use prefix", f"[64:ff9b:1::7f00:1]:{port}", "private_address"),
        LiteralCase("IPv4-compatible", f"[::7f00:1]:{port}", "private_address"),
        LiteralCase("IPv4-compatible, dotted", f"[::127.0.0.1]:{port}", "private_address"),
        LiteralCase("SIIT IPv4-translated", f"[::ffff:0:7f00:1]:{port}", "private_address"),
        LiteralCase("6to4", f"[2002:7f00:1::1]:{port}", "private_address"),
        LiteralCase(
            "Teredo (client bits inverted)", f"[2001:0:4136:e378:8000:63bf:80ff:fffe]:{port}", "private_address"
        ),
        LiteralCase("NAT64 of the metadata address", f"[64:ff9b::a9fe:a9fe]:{port}", "private_address"),
        LiteralCase("a reserved IPv4 address", f"240.0.0.1:{port}", "private_address"),
        LiteralCase("an IPv6 documentation address", f"[3fff::1]:{port}", "private_address"),
        LiteralCase("a zone id", f"[fe80::1%eth0]:{port}", "bad_request"),
        LiteralCase("a percent-encoded zone id", f"[fe80::1%25eth0]:{port}", "bad_request"),
    ]


@pytest.fixture(scope="module")
def literal_upstream(test_ca, tmp_path_factory) -> Upstream:
    """The loopback upstream, with a certificate for its IPv4-mapped address too (the controls dial it so)."""
    pem = tmp_path_factory.mktemp("literal") / "upstream.pem"
    test_ca.issue_cert("127.0.0.1", "::ffff:127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    server = start_upstream(str(pem), str(pem))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def agent(module_firewall: Firewall, literal_upstream: Upstream, module_proxy: RunningProxy) -> Agent:
    module_upstream = literal_upstream
    module_firewall.apply(PROXY_POLICY.format(port=module_upstream.port))
    return Agent(module_proxy.port, "attacker", mint_token(module_firewall, "attacker"), proxy_ca(module_firewall))


def test_ipv6_forms_of_loopback_through_the_proxy(agent: Agent, module_firewall: Firewall, literal_upstream: Upstream):
    module_upstream = literal_upstream
    failures = []
    for case in _cases(module_upstream.port):
        before = len(module_upstream.seen)
        sock, reply = agent.connect(case.target)
        sock.close()
        if reply is None:
            reply = agent.https(case.target, request_bytes("GET", "/v1/models", case.target))
        reached = len(module_upstream.seen) - before
        if case.refused is None:
            ok = reply.status == 200 and reached == 1
        elif case.refused == "bad_request":
            ok = reply.status in (400, 403) and reached == 0
        else:
            ok = reply.status == 403 and reached == 0 and _reason(module_firewall, reply) == case.refused
        if not ok:
            failures.append((case.attack, case.target, reply.status, reply.body[:200]))
    assert failures == []


def _reason(firewall: Firewall, reply) -> str:
    from tests.security.conftest import audit_row

    return audit_row(firewall.home, reply.headers["x-firewall-request-id"])["reason"]
