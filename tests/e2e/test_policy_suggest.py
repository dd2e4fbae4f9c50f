"""`policy suggest` on a real audit log made by a real proxy run: the rules it proposes for what was
refused by default again and again and for what a person approved, and, beside each, a control of
the same shape that gets no rule (a one-off, a request the exfiltration guard refused, a request a
person denied, a request the policy now allows)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.helpers import rule_line, run_client
from tests.e2e.test_approvals import TUNE, error_type, finish, start_agent, wait_pending
from tests.support.fixtures import REAL_KEY, Firewall

POLICY = """\
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}

host keyed.example:8443 {{
    inject openai
    allow
}}

host localhost:{port} {{
    allow GET /v1/models
    approve POST /v1/fine_tuning/** reason "billed per token"
    {later}
}}

test "models" {{
    expect allow GET https://localhost:{port}/v1/models
}}
"""


def policy(port: int, later: str = "") -> str:
    return POLICY.format(port=port, later=later)


@pytest.fixture(scope="module")
def recorded(module_firewall, module_upstream, module_proxy, tmp_path_factory) -> tuple[Firewall, int]:
    fw, port, base = module_firewall, module_upstream.port, module_upstream.base_url
    fw.add_secret("openai", REAL_KEY, provider="openai")
    fw.apply(policy(port))
    out = tmp_path_factory.mktemp("clients")
    steps = ["get:/v1/files", "get:/v1/files", "get:/v1/once", "models", "get:/v1/later", "get:/v1/later"]
    steps += ["get:/v1/items/a", "get:/v1/items/b", "get:/v1/items/c", "get:/v1/leak", "get:/v1/leak"]
    steps += [f"get:/v1/leak?x={REAL_KEY}"]
    run = run_client(fw, "httpx", base, *steps, agent="a1", out=out / "a1.json")
    assert [r["status"] for r in run.results] == [403, 403, 403, 200] + [403] * 8, run.stderr
    tune = start_agent(fw, "a1", f"{base}/v1/fine_tuning/jobs", TUNE)
    (row,) = wait_pending(fw, "a1")
    fw.run("approvals", "approve", row["id"], check=True)
    assert finish(tune)[0] == "200"
    other = start_agent(fw, "a1", f"{base}/v1/fine_tuning/other", TUNE)
    (row,) = wait_pending(fw, "a1")
    fw.run("approvals", "deny", row["id"], check=True)
    assert error_type(finish(other)[1]) == "approval_denied"
    fw.audit_rows_once(lambda rows: sum(r["agent"] == "a1" for r in rows) >= 14)
    fw.apply(policy(port, later="allow GET /v1/later"))  # what the policy now allows gets no rule
    return fw, port


def test_suggest_proposes_each_class_and_nothing_for_the_controls(recorded):
    fw, port = recorded
    result = fw.run("policy", "suggest", "--since", "1h", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    text = policy(port, later="allow GET /v1/later")
    rules = {r["rule"]: r for r in data["rules"]}
    assert set(rules) == {"allow GET /v1/files", "allow GET /v1/items/*", "allow POST /v1/fine_tuning/jobs"}
    assert rules["allow GET /v1/files"]["requests"] == 2 and rules["allow GET /v1/files"]["where"] == "block_end"
    assert rules["allow GET /v1/items/*"]["requests"] == 3
    tune = rules["allow POST /v1/fine_tuning/jobs"]
    assert tune["where"] == "before_rule" and tune["approved"] == 1
    assert tune["before"] == f"test.policy:{rule_line(text, 'approve POST')}"
    assert tune["examples"] == [f"POST https://localhost:{port}/v1/fine_tuning/jobs"]
    # The controls: a one-off, the refused (exfiltration, and the approval a person denied), the allowed.
    assert data["skipped"] == {"too_few": 1, "refused": 4, "already_allowed": 2}
    assert "/v1/leak" not in result.stdout and "/v1/once" not in result.stdout and "other" not in result.stdout
    check = data["check"]
    assert check["compiles"] and check["tests"] == {"hold": 1, "fail": []}
    assert check["replay"]["changed"] == 6
    assert check["replay"]["counts"]["block_to_allow"] == 5 and check["replay"]["counts"]["approval_to_allow"] == 1


def test_the_fragment_is_policy_text_and_the_diff_edits_the_block_in_place(recorded, tmp_path):
    fw, port = recorded
    out = tmp_path / "suggested.policy"
    written = fw.run("policy", "suggest", "--since", "1h", "--write", str(out))
    assert written.returncode == 0, written.stderr
    assert "6 of" in written.stdout and "recorded decision(s) would change" in written.stdout
    fragment = out.read_text()
    assert f"host localhost:{port} {{" in fragment and "# add to the host block at test.policy:" in fragment
    assert fw.run("policy", "check", str(out)).returncode == 0  # the fragment alone compiles
    diff = fw.run("policy", "suggest", "--since", "1h", "--diff")
    assert diff.returncode == 0, diff.stderr
    added = [line for line in diff.stdout.splitlines() if line.startswith("+    allow")]
    # just before the approve rule, then at the end of the block
    assert added == ["+    allow POST /v1/fine_tuning/jobs", "+    allow GET /v1/files", "+    allow GET /v1/items/*"]
    plain = fw.run("policy", "suggest", "--since", "1h")
    assert plain.stdout.startswith("# suggested by `firewall policy suggest`") and "would change" in plain.stderr


def test_agent_narrows_the_rules_and_min_count_one_takes_a_one_off(recorded):
    fw, _ = recorded
    mine = json.loads(fw.run("policy", "suggest", "--since", "1h", "--agent", "a1", "--json", check=True).stdout)
    assert all(r["condition"] and 'agent == "a1"' in r["condition"] for r in mine["rules"])
    nobody = json.loads(fw.run("policy", "suggest", "--since", "1h", "--agent", "a9", "--json", check=True).stdout)
    assert nobody["rules"] == [] and nobody["skipped"]["other_agents"] == 11
    ones = json.loads(fw.run("policy", "suggest", "--since", "1h", "--min-count", "1", "--json", check=True).stdout)
    assert "allow GET /v1/once" in {r["rule"] for r in ones["rules"]}


def test_a_bad_since_or_no_policy_fails_with_one_line(recorded, firewall):
    fw, _ = recorded
    bad = fw.run("policy", "suggest", "--since", "yesterday-ish")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --since:")
    none = firewall.run("policy", "suggest")
    assert none.returncode == 1 and "no policy is in force" in none.stderr
