"""The engine's exfiltration step (10) and its refusal of TRACE (step 1), on compiled policies."""

from __future__ import annotations

from dataclasses import replace

import pytest

from firewall.policy import Reason, Request, Verdict, compile_source, decide

POLICY = compile_source("""
default block
credential openai {
    secret "openai"
    header Authorization = "Bearer {secret}"
}
credential team {
    secret "team-key"
    header X-Team = "{secret}"
}
host api.openai.com {
    inject openai
    inject team when agent == "red"
    block /v1/files/**
    allow
}
host example.com {
    allow
}
""").policy

REPORT = compile_source("""
mode report
default block
credential openai {
    secret "openai"
    header Authorization = "Bearer {secret}"
}
host api.openai.com {
    inject openai
    block /v1/files/**
}
""").policy


def decide_with(url: str, secrets: tuple[str, ...], *, method: str = "GET", agent: str | None = None, policy=POLICY):
    return decide(policy, replace(Request.from_url(method, url, agent=agent), secrets=secrets), 0.0)


def test_a_secret_sent_where_it_is_injected_goes_through():
    decision = decide_with("https://api.openai.com/v1/models", ("openai",))
    assert (decision.verdict, decision.reason) == (Verdict.ALLOW, Reason.RULE)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/upload",  # a host block that injects nothing
        "https://evil.example.net/",  # no host block at all
        "http://api.openai.com/v1/models",  # plain HTTP to the right host: never injected
        "https://api.openai.com:8443/x",  # a port the policy does not name
        "https://10.0.0.1/",  # a private address
        "https://api.openai.com/a/..%2fb",  # an ambiguous path
    ],
)
def test_a_secret_sent_anywhere_else_is_exfiltration(url):
    decision = decide_with(url, ("openai",))
    assert (decision.verdict, decision.reason) == (Verdict.BLOCK, Reason.EXFILTRATION)
    assert '"openai"' in decision.message and decision.inject == () and decision.limits == ()


def test_exfiltration_wins_over_a_blocking_rule():
    decision = decide_with("https://api.openai.com/v1/files/x", ("openai",))
    assert (decision.verdict, decision.reason, decision.rule) == (Verdict.BLOCK, Reason.EXFILTRATION, None)


def test_a_secret_injected_only_under_a_condition_leaks_where_the_condition_fails():
    allowed = decide_with("https://api.openai.com/v1/models", ("team-key",), agent="red")
    refused = decide_with("https://api.openai.com/v1/models", ("team-key",), agent="blue")
    assert allowed.verdict is Verdict.ALLOW
    assert (refused.verdict, refused.reason) == (Verdict.BLOCK, Reason.EXFILTRATION)


def test_one_injected_secret_does_not_cover_another():
    decision = decide_with("https://api.openai.com/v1/models", ("openai", "team-key"), agent="blue")
    assert decision.reason is Reason.EXFILTRATION
    assert '"team-key"' in decision.message and '"openai"' not in decision.message


def test_report_mode_still_blocks_exfiltration():
    ok = decide_with("https://api.openai.com/v1/files/x", ("openai",), policy=REPORT)
    leak = decide_with("https://example.com/", ("openai",), policy=REPORT)
    assert (ok.verdict, ok.would) == (Verdict.ALLOW, Verdict.BLOCK)
    assert (leak.verdict, leak.reason, leak.would) == (Verdict.BLOCK, Reason.EXFILTRATION, None)


def test_the_exfiltration_decision_keeps_where_the_request_went():
    decision = decide_with("https://EXAMPLE.com./up/./load?q=1", ("openai",))
    assert (decision.host, decision.canonical_path, decision.query) == ("example.com", "/up/load", "q=1")


@pytest.mark.parametrize("method", ["TRACE", "TRACK"])
def test_trace_is_never_forwarded_even_where_any_method_is_allowed(method):
    decision = decide_with("https://example.com/", (), method=method)
    assert (decision.verdict, decision.reason) == (Verdict.BLOCK, Reason.UNSAFE_METHOD)
    assert decide_with("https://example.com/", (), method="OPTIONS").verdict is Verdict.ALLOW
