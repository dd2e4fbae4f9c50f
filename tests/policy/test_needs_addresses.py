"""`Decision.needs_addresses`: the engine says when the addresses a name resolves to may still refuse
a request, so the proxy resolves only then (a refused host is never looked up).

Each shape with its control: a block never needs addresses, whatever refuses it; a let-through
request to a name does (allow, approve, allow under `mode report`, `allow tcp`), and not once the
addresses are given; an address literal never does. Given addresses, one call answers as the two
(decide on the name, then on the addresses) would: a request refused anyway keeps its own reason.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from firewall.policy import Decision, Reason, Request, Verdict, compile_source, decide

POLICY = compile_source("""
default block

credential shared {
    secret "openai"
    header Authorization = "Bearer {secret}"
}

host *.example.com {               # a wildcard: no private address through it
    block POST /admin/**
    approve POST /v1/batches
    allow GET
}
host internal.example.com:8080 {   # named exactly: may reach a private address
    allow GET
}
host api.openai.com {
    inject shared
    allow
}
host db.example.com:5432 {
    allow tcp
}
host 127.0.0.1:9000 {
    allow GET
}
host 93.184.216.34 {
    allow GET
}
""").policy

REPORT = compile_source("""
default block
mode report
host *.example.com {
    block POST /admin/**
}
""").policy

PUBLIC = ("93.184.216.34",)
PRIVATE = ("10.0.0.5",)
METADATA = ("169.254.169.254",)


def _decide(method: str, url: str, addresses: tuple[str, ...] = (), *, policy=POLICY, secrets=()) -> Decision:
    request = replace(Request.from_url(method, url), addresses=addresses, secrets=secrets)
    return decide(policy, request, 0.0)


# ---- a block never needs addresses ----


@pytest.mark.parametrize(
    ("method", "url", "reason"),
    [
        ("GET", "https://nobody.example.net/", Reason.DEFAULT_NO_HOST),
        ("POST", "https://api.example.com/admin/users", Reason.RULE),
        ("DELETE", "https://api.example.com/", Reason.DEFAULT_NO_RULE),
        ("GET", "https://api.example.com/a%2Fb", Reason.AMBIGUOUS_PATH),
        ("TRACE", "https://api.example.com/", Reason.UNSAFE_METHOD),
        ("GET", "http://api.openai.com/v1/models", Reason.PLAIN_HTTP_CREDENTIAL),
        ("TCP", "tcp://api.example.com:6379", Reason.NOT_HTTP),
    ],
)
def test_a_block_never_needs_addresses(method, url, reason):
    decision = _decide(method, url)
    assert (decision.verdict, decision.reason, decision.needs_addresses) == (Verdict.BLOCK, reason, False)


def test_a_request_carrying_a_secret_not_injected_is_refused_without_addresses():
    decision = _decide("GET", "https://api.example.com/", secrets=("openai",))
    assert (decision.verdict, decision.reason, decision.needs_addresses) == (
        Verdict.BLOCK,
        Reason.EXFILTRATION,
        False,
    )


def test_control_the_secret_it_injects_leaves_the_request_needing_addresses():
    decision = _decide("GET", "https://api.openai.com/v1/models", secrets=("openai",))
    assert (decision.verdict, decision.needs_addresses) == (Verdict.ALLOW, True)


# ---- a let-through request to a name needs them ----


@pytest.mark.parametrize(
    ("method", "url", "verdict"),
    [
        ("GET", "https://api.example.com/v1/models", Verdict.ALLOW),
        ("POST", "https://api.example.com/v1/batches", Verdict.APPROVE),
        ("GET", "https://internal.example.com:8080/", Verdict.ALLOW),
        ("TCP", "tcp://db.example.com:5432", Verdict.ALLOW),
    ],
)
def test_a_let_through_request_to_a_name_needs_its_addresses(method, url, verdict):
    decision = _decide(method, url)
    assert (decision.verdict, decision.needs_addresses) == (verdict, True)
    assert _decide(method, url, PUBLIC) == replace(decision, needs_addresses=False)


def test_a_would_be_block_under_report_mode_is_let_through_and_needs_addresses():
    decision = _decide("POST", "https://api.example.com/admin/users", policy=REPORT)
    assert (decision.verdict, decision.would, decision.needs_addresses) == (Verdict.ALLOW, Verdict.BLOCK, True)
    refused = _decide("POST", "https://api.example.com/admin/users", PRIVATE, policy=REPORT)
    assert (refused.verdict, refused.reason) == (Verdict.BLOCK, Reason.PRIVATE_ADDRESS)


@pytest.mark.parametrize("addresses", [PRIVATE, METADATA, ("93.184.216.34", "64:ff9b::7f00:1")])
def test_the_addresses_refuse_a_name_the_policy_lets_through(addresses):
    decision = _decide("GET", "https://api.example.com/v1/models", addresses)
    assert (decision.verdict, decision.reason, decision.needs_addresses) == (
        Verdict.BLOCK,
        Reason.PRIVATE_ADDRESS,
        False,
    )
    assert decision.rule is None and decision.canonical_path == ""  # as step 2 refuses a literal


def test_control_a_name_named_exactly_reaches_its_private_address_but_not_a_link_local_one():
    assert _decide("GET", "https://internal.example.com:8080/", PRIVATE).verdict is Verdict.ALLOW
    assert _decide("GET", "https://internal.example.com:8080/", METADATA).reason is Reason.PRIVATE_ADDRESS


# ---- given addresses, a request refused anyway keeps its own reason ----


@pytest.mark.parametrize(
    ("method", "url", "reason"),
    [
        ("GET", "https://nobody.example.net/", Reason.DEFAULT_NO_HOST),
        ("POST", "https://api.example.com/admin/users", Reason.RULE),
        ("TCP", "tcp://api.example.com:6379", Reason.NOT_HTTP),
    ],
)
def test_a_request_refused_anyway_is_refused_for_its_own_reason_whatever_its_addresses(method, url, reason):
    """As the proxy decides without a lookup: the addresses are asked only of what may pass."""
    for addresses in ((), PRIVATE, METADATA, PUBLIC):
        decision = _decide(method, url, addresses)
        assert (decision.verdict, decision.reason, decision.needs_addresses) == (Verdict.BLOCK, reason, False)


# ---- an address literal never needs addresses ----


@pytest.mark.parametrize(
    ("url", "verdict", "reason"),
    [
        ("https://93.184.216.34/", Verdict.ALLOW, Reason.RULE),
        ("http://127.0.0.1:9000/", Verdict.ALLOW, Reason.RULE),  # named exactly
        ("http://127.0.0.1:9001/", Verdict.BLOCK, Reason.PRIVATE_ADDRESS),
        ("https://[::ffff:7f00:1]:9001/", Verdict.BLOCK, Reason.PRIVATE_ADDRESS),
        ("https://8.8.8.8/", Verdict.BLOCK, Reason.DEFAULT_NO_HOST),
    ],
)
def test_an_address_literal_never_needs_addresses(url, verdict, reason):
    decision = _decide("GET", url)
    assert (decision.verdict, decision.reason, decision.needs_addresses) == (verdict, reason, False)
