"""`policy replay` and `policy apply --plan` on a real audit log made by a real proxy run: the counts
by change, rule and agent, unknown where the log lacks what a condition reads, and the exit codes."""

from __future__ import annotations

import json

import pytest

from tests.e2e.helpers import rule_line, run_client
from tests.support.fixtures import Firewall

POLICY = """\
host localhost:{port} {{
    allow GET /flip
    allow GET /v1/models
    {chat}
}}
{tests}"""
CHAT = "allow POST /v1/chat/completions"
TESTS = """
test "models" {{
    expect {models} GET https://localhost:{port}/v1/models
}}
"""


def policy(port: int, *, flip: str = "allow", chat: str = CHAT, models: str = "allow") -> str:
    text = POLICY.format(port=port, chat=chat, tests=TESTS.format(port=port, models=models))
    return text.replace("allow GET /flip", f"{flip} GET /flip")


@pytest.fixture(scope="module")
def recorded(module_firewall, module_upstream, module_proxy, tmp_path_factory) -> tuple[Firewall, int]:
    """Traffic of two agents under the policy in force: a1 models, flip twice, chat; a2 models."""
    fw, port = module_firewall, module_upstream.port
    fw.apply(policy(port), name="in-force.policy")
    out = tmp_path_factory.mktemp("clients")
    a1 = run_client(
        fw,
        "httpx",
        module_upstream.base_url,
        "models",
        "get:/flip",
        "get:/flip",
        "chat",
        agent="a1",
        out=out / "a1.json",
    )
    a2 = run_client(fw, "httpx", module_upstream.base_url, "models", agent="a2", out=out / "a2.json")
    assert [r["status"] for r in a1.results + a2.results] == [200] * 5, a1.stderr + a2.stderr
    fw.audit_rows_once(lambda rows: len(rows) >= 5)
    return fw, port


def replay(fw: Firewall, text: str, *args: str, name: str = "candidate.policy"):
    return fw.run("policy", "replay", str(fw.write_policy(name, text)), "--since", "1h", *args)


def test_blocking_a_path_counts_its_requests_by_rule_and_agent(recorded):
    fw, port = recorded
    text = policy(port, flip="block")
    result = replay(fw, text, "--json")
    assert result.returncode == 3, result.stderr
    data = json.loads(result.stdout)
    assert data["requests"] == 5 and data["changed"] == 2 and data["unknown"] == 0
    assert data["counts"]["allow_to_block"] == 2 and data["counts"]["unchanged"] == 3
    assert data["by_rule"]["allow_to_block"] == {f"candidate.policy:{rule_line(text, 'GET /flip')}": 2}
    assert data["by_agent"]["allow_to_block"] == {"a1": 2}
    example = data["examples"]["allow_to_block"][0]
    assert example["url"] == f"https://localhost:{port}/flip" and example["agent"] == "a1"
    assert example["old"]["decision"] == "allow" and example["new"]["decision"] == "block"
    text_out = replay(fw, text).stdout
    assert "allow_to_block" in text_out and "2 decision(s) would change (exit 3)" in text_out


def test_a_condition_on_the_body_is_unknown_not_guessed(recorded):
    fw, port = recorded
    chat = 'allow POST /v1/chat/completions when json.model == "gpt-4o-mini"'
    result = replay(fw, policy(port, chat=chat), "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr  # unknowns alone do not fail the gate
    assert data["unknown"] == 1 and data["changed"] == 0
    assert data["by_agent"]["unknown"] == {"a1": 1}
    assert "does not record" in data["examples"]["unknown"][0]["unknown"]
    assert data["by_rule"]["unknown"] == {f"candidate.policy:{rule_line(policy(port, chat=chat), 'json.model')}": 1}


def test_the_policy_in_force_changes_nothing_and_exits_0(recorded):
    fw, port = recorded
    result = replay(fw, policy(port))
    assert result.returncode == 0, result.stderr
    assert "no recorded decision would change" in result.stdout


def test_a_candidate_that_fails_its_tests_or_does_not_compile_exits_1_or_2(recorded):
    fw, port = recorded
    failing = replay(fw, policy(port, models="block"))
    assert failing.returncode == 1 and "expectation(s) of the candidate do not hold" in failing.stderr
    broken = replay(fw, policy(port).replace("allow GET /flip", "allow GET /flip when jsn.x == 1"))
    assert broken.returncode == 2 and 'unknown field "jsn.x"' in broken.stderr


def test_apply_plan_prints_the_plan_and_applies_nothing(recorded):
    fw, port = recorded
    before = json.loads(fw.run("policy", "show", "--json", check=True).stdout)["version"]
    result = fw.run("policy", "apply", str(fw.write_policy("plan.policy", policy(port, flip="block"))), "--plan")
    assert result.returncode == 3, result.stderr
    assert "allow_to_block" in result.stdout and "applied" not in result.stdout
    assert json.loads(fw.run("policy", "show", "--json", check=True).stdout)["version"] == before
