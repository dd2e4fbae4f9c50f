"""Rules proposed from what agents did (firewall/policy/suggest.py, suggest_edit.py): each class of
suggestion, and beside it a control of the same shape that must not give a rule."""

from __future__ import annotations

import pytest

from firewall.policy import CompiledPolicy, Request, Verdict, decide
from firewall.policy.loader import compile_source
from firewall.policy.suggest import Observed, Options, Seen, Where, condition_text, propose
from firewall.policy.suggest_edit import Source, candidate, compile_sources, fragment, source_diff
from firewall.policy.suggest_globs import generalize

POLICY = """\
host api.example.com {
    block GET /v1/secret
    approve POST /v1/jobs/* when json.size > 10 reason "costly"
    approve PUT /v1/exact/a, /v1/exact/b, /v1/exact/c
    allow GET /v1/models
}

host *.example.org {
    allow GET /ok
}

test "kept" {
    expect block GET https://api.example.com/v1/secret
    expect allow GET https://api.example.com/v1/models
}
"""


def _policy(text: str = POLICY) -> CompiledPolicy:
    return compile_source(text, "main.policy").policy


def seen(kind: Seen, method: str, url: str, agent: str | None = "ci", rule: str | None = None, times: int = 1):
    request = Request.from_url(method, url)
    path, _, query = request.target.partition("?")
    one = Observed(kind, request.method, request.scheme, request.host, request.port, path, query, agent, rule)
    return [one] * times


def default(method: str, url: str, times: int = 2, agent: str | None = "ci"):
    return seen(Seen.DEFAULT, method, url, agent, times=times)


def texts(proposal) -> list[str]:
    return [s.text for s in proposal.suggestions]


def test_a_repeated_request_to_a_host_no_block_names_gets_a_new_block_and_a_one_off_does_not():
    rows = default("GET", "https://api.new.example/v1/list") + default("GET", "https://api.new.example/v1/once", 1)
    proposal = propose(_policy(), rows)
    (only,) = proposal.suggestions
    assert only.text == "allow GET /v1/list" and only.requests == 2
    assert only.placement.where is Where.NEW_BLOCK and only.placement.patterns == ("api.new.example:443",)
    assert only.examples == ("GET https://api.new.example/v1/list",) * 2
    assert proposal.skipped == {"too_few": 1}  # the control: seen once, no rule


def test_a_request_no_rule_of_its_block_decides_goes_at_the_end_of_that_block_and_an_allowed_one_is_left():
    rows = default("DELETE", "https://api.example.com/v1/models/m1") + default(
        "GET", "https://api.example.com/v1/models"
    )
    proposal = propose(_policy(), rows)
    (only,) = proposal.suggestions
    assert only.text == "allow DELETE /v1/models/m1"
    assert only.placement.where is Where.BLOCK_END and only.placement.block.location == "main.policy:1"
    assert proposal.skipped == {"already_allowed": 2}


def test_an_approved_request_gets_a_rule_just_before_the_approve_rule_with_its_condition():
    rows = seen(Seen.APPROVED, "POST", "https://api.example.com/v1/jobs/j1", rule="main.policy:3")
    proposal = propose(_policy(), rows)
    (only,) = proposal.suggestions
    assert only.text == "allow POST /v1/jobs/j1 when json.size > 10"  # one approval is enough
    assert only.placement.where is Where.BEFORE_RULE and only.placement.before.location == "main.policy:3"
    assert only.approved == 1


def test_a_request_a_person_denied_gets_no_rule_even_when_another_was_approved():
    rows = seen(Seen.APPROVED, "POST", "https://api.example.com/v1/jobs/j1", rule="main.policy:3")
    rows += seen(Seen.REFUSED, "POST", "https://api.example.com/v1/jobs/j1")
    proposal = propose(_policy(), rows)
    assert proposal.suggestions == () and proposal.skipped == {"refused": 2}


@pytest.mark.parametrize("refused", [True, False])
def test_no_glob_covers_a_path_the_exfiltration_guard_refused(refused):
    rows = [r for name in "abc" for r in default("GET", f"https://api.new.example/files/{name}")]
    if refused:
        rows += seen(Seen.REFUSED, "GET", "https://api.new.example/files/d")
    proposal = propose(_policy(), rows)
    if refused:
        assert texts(proposal) == ["allow GET /files/a", "allow GET /files/b", "allow GET /files/c"]
    else:  # the control: the same traffic without the refusal shares a prefix
        assert texts(proposal) == ["allow GET /files/*"]


def test_a_prefix_only_when_several_paths_share_it_and_never_over_a_sensitive_segment():
    three = [r for name in ("m1", "m2", "m3") for r in default("GET", f"https://api.new.example/v1/models/{name}")]
    assert texts(propose(_policy(), three)) == ["allow GET /v1/models/*"]
    two = [r for name in ("m1", "m2") for r in default("GET", f"https://api.new.example/v1/models/{name}")]
    assert texts(propose(_policy(), two)) == ["allow GET /v1/models/m1", "allow GET /v1/models/m2"]
    admin = [r for name in ("m1", "m2", "admin") for r in default("GET", f"https://api.new.example/v1/x/{name}")]
    assert "allow GET /v1/x/*" not in texts(propose(_policy(), admin))
    middle = [r for n in ("1", "2", "3") for r in default("GET", f"https://api.new.example/repos/{n}/issues")]
    assert texts(propose(_policy(), middle)) == ["allow GET /repos/*/issues"]


def test_a_glob_before_an_approve_rule_stays_within_that_rules_paths():
    within = [
        r
        for name in ("j1", "j2", "j3")
        for r in seen(Seen.APPROVED, "POST", f"https://api.example.com/v1/jobs/{name}", rule="main.policy:3")
    ]
    assert texts(propose(_policy(), within)) == ["allow POST /v1/jobs/* when json.size > 10"]
    exact = [
        r
        for name in "abc"
        for r in seen(Seen.APPROVED, "PUT", f"https://api.example.com/v1/exact/{name}", rule="main.policy:4")
    ]
    # The control: `/v1/exact/*` would decide paths the approve rule never held.
    assert texts(propose(_policy(), exact)) == [f"allow PUT /v1/exact/{n}" for n in "abc"]


def test_a_rule_in_a_wildcard_block_names_its_host_and_agent_restriction_names_the_agents():
    rows = default("GET", "https://a.example.org/new") + default("GET", "https://a.example.org/new", agent="dev")
    (wild,) = propose(_policy(), rows).suggestions
    assert wild.text == 'allow GET /new when host == "a.example.org"'
    proposal = propose(_policy(), rows, Options(agents=("ci",)))
    assert texts(proposal) == ['allow GET /new when host == "a.example.org" and agent == "ci"']
    assert proposal.skipped == {"other_agents": 2}


def test_any_path_of_a_host_only_when_asked_and_never_over_a_refused_path():
    rows = default("GET", "https://api.new.example/a") + default("GET", "https://api.new.example/b/c")
    assert texts(propose(_policy(), rows)) == ["allow GET /a", "allow GET /b/c"]
    assert texts(propose(_policy(), rows, Options(whole_host=True))) == ["allow GET"]
    refused = rows + seen(Seen.REFUSED, "GET", "https://api.new.example/secret")
    assert texts(propose(_policy(), refused, Options(whole_host=True))) == ["allow GET /a", "allow GET /b/c"]


def test_methods_that_share_a_path_share_a_rule_and_ports_80_and_443_name_the_host_alone():
    rows = default("GET", "https://api.new.example/x") + default("HEAD", "https://api.new.example/x")
    rows += default("GET", "http://api.new.example/x")
    (only,) = propose(_policy(), rows).suggestions
    assert only.text == "allow GET, HEAD /x" and only.placement.patterns == ("api.new.example",)


def test_a_path_a_glob_cannot_name_exactly_gets_no_rule():
    rows = default("GET", "https://api.new.example/a*b") + default("GET", "https://api.new.example/a,b")
    proposal = propose(_policy(), rows)
    assert proposal.suggestions == () and proposal.skipped == {"not_writable": 4}


def test_the_candidate_compiles_keeps_the_tests_and_decides_only_what_was_seen():
    policy = _policy()
    rows = default("DELETE", "https://api.example.com/v1/models/m1")
    rows += seen(Seen.APPROVED, "POST", "https://api.example.com/v1/jobs/j1", rule="main.policy:3")
    rows += default("GET", "https://api.new.example/v1/list")
    proposal = propose(policy, rows)
    sources = [Source("main.policy", POLICY)]
    result = compile_sources(candidate(sources, proposal))
    new = result.policy
    assert len(result.tests) == 2

    def verdict(p, method, url, body=None):
        request = Request.with_json(method, url, body) if body is not None else Request.from_url(method, url)
        return decide(p, request, 0.0).verdict

    assert verdict(new, "DELETE", "https://api.example.com/v1/models/m1") is Verdict.ALLOW
    assert verdict(new, "POST", "https://api.example.com/v1/jobs/j1", {"size": 11}) is Verdict.ALLOW
    assert verdict(new, "GET", "https://api.new.example/v1/list") is Verdict.ALLOW
    # Controls: what was not seen is decided as before.
    for method, url, body in [
        ("DELETE", "https://api.example.com/v1/models/m2", None),
        ("POST", "https://api.example.com/v1/jobs/j2", {"size": 11}),
        ("GET", "https://api.example.com/v1/secret", None),
        ("GET", "https://api.new.example/v1/other", None),
        ("GET", "http://api.new.example/v1/list", None),
    ]:
        assert verdict(new, method, url, body) is verdict(policy, method, url, body), (method, url)
    diff = source_diff(sources, candidate(sources, proposal))
    assert "+    allow DELETE /v1/models/m1" in diff and "+++ b/suggested.policy" in diff


def test_the_fragment_of_new_hosts_is_a_policy_of_its_own():
    rows = default("GET", "https://api.new.example/v1/list")
    text = fragment(propose(_policy(), rows), ("from a test",))
    assert "# from a test" in text and "# a new host block" in text
    assert compile_source(text, "fragment.policy").policy.blocks[0].patterns == ("api.new.example:443",)


def test_report_mode_rows_that_the_default_would_have_refused_are_learned_from():
    report = _policy("mode report\n" + POLICY)
    rows = default("GET", "https://api.new.example/v1/list")
    assert texts(propose(report, rows)) == ["allow GET /v1/list"]


@pytest.mark.parametrize(
    "condition",
    [
        'agent == "ci"',
        '(agent == "a" or agent == "b") and not header.x-team == "red"',
        'json.model in ["gpt-4o-mini", "o3"] or query.page <= 2',
        'header.user-agent matches "codex/*" and json.n not in [1, 2.5, true, null]',
    ],
)
def test_a_compiled_condition_is_written_back_as_the_same_condition(condition):
    when = _policy(f"host a.com {{\n    allow when {condition}\n}}\n").blocks[0].rules[0].match.when
    again = _policy(f"host a.com {{\n    allow when {condition_text(when)}\n}}\n").blocks[0].rules[0].match.when
    assert again == when


def test_generalize_keeps_seen_paths_and_drops_a_trailing_slash():
    covered = generalize(["/v1/a/", "/v1/a"], 3)
    assert [(c.glob, sorted(c.paths)) for c in covered] == [("/v1/a", ["/v1/a", "/v1/a/"])]
