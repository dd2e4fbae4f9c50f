"""An approval that becomes a rule, end to end: agents' requests held by a real proxy; the prompt's
`s` key in a real terminal (tmux) and `firewall approvals approve ID --suggest` show the rule as a
diff, and on yes the held request passes, the policy's file holds the rule, `policy history` has
the new version (from the approval, by whom) and the proxy lets the next identical request through
without asking. Controls: declining changes nothing (the request still waits), another agent's
request is still held, and a rule that breaks one of the policy's tests is not applied.

One proxy and upstream for the module; each test applies the base policy again first.
"""

from __future__ import annotations

import getpass
import json
import sys

import pytest

from tests.e2e.helpers import wait_until
from tests.e2e.test_approvals import POLICY, TUNE, Terminal, _alive, finish, pending, start_agent, wait_pending
from tests.support.fixtures import REAL_KEY, Firewall

TESTS = """
test "fine-tuning is held" {{
    expect approve POST https://localhost:{port}/v1/fine_tuning/jobs as agent "{agent}"
}}
"""


@pytest.fixture(scope="module")
def fw(module_firewall, module_upstream, module_proxy) -> Firewall:
    module_firewall.add_secret("openai", REAL_KEY, provider="openai")
    return module_firewall


def _base(fw: Firewall, port: int, extra: str = "") -> str:
    text = POLICY.format(timeout="5m", port=port) + extra  # a loaded machine is slow to answer
    fw.apply(text)
    return text


def _version(fw: Firewall) -> int:
    return json.loads(fw.run("policy", "show", "--json", check=True).stdout)["version"]


def _in_force(fw: Firewall, version: int) -> None:
    """Once the running proxy enforces `version` (its watcher polls every 200 ms)."""
    fw.wait_for_proxy_log(lambda lines: any(f"policy version {version} (" in line for line in lines))


def _approvals_of(fw: Firewall, agent: str) -> list[dict]:
    rows = json.loads(fw.run("approvals", "list", "--all", "--json", check=True).stdout)
    return [row for row in rows if row["agent"] == agent]


def _passes_without_asking(fw: Firewall, agent: str, url: str, version: int) -> None:
    """The identical request again: answered 200 by the upstream, no new approval row, allowed by
    the new rule in the audit log."""
    _in_force(fw, version)
    again = start_agent(fw, agent, url, TUNE)
    assert finish(again)[0] == "200"
    assert len(_approvals_of(fw, agent)) == 1  # only the first request was ever held
    rows = fw.audit_rows_once(lambda rows: sum(r["agent"] == agent for r in rows) >= 2)
    last = [r for r in rows if r["agent"] == agent][-1]
    assert last["decision"] == "allow" and last["rule"].startswith("test.policy:"), last


def test_the_prompt_s_key_shows_the_diff_and_y_applies_the_rule(fw, module_upstream, tmp_path):
    text = _base(fw, module_upstream.port)
    policy_file = fw.home.parent / "test.policy"
    before = _version(fw)
    url = f"{module_upstream.base_url}/v1/fine_tuning/jobs"
    rule = 'allow POST /v1/fine_tuning/jobs when agent == "ci-rule"'
    raw = tmp_path / "terminal.raw"
    raw.touch()
    terminal = Terminal(fw, tmp_path / "tmux.sock", [sys.executable, "-m", "firewall", "approvals"], raw)
    try:
        terminal.wait_for("Waiting for requests that need approval")
        agent = start_agent(fw, "ci-rule", url, TUNE)
        terminal.wait_for("agent    ci-rule", "[s] allow and add a rule")
        (row,) = pending(fw, "ci-rule")
        # The control: s shows the diff, n goes back and changes nothing.
        terminal.press("s")
        screen = terminal.wait_for(f"Add a rule to the policy for request {row['id']}?", "[y] yes, allow and apply")
        assert f"+    {rule}" in screen and "--- a/test.policy" in screen
        terminal.press("n")
        terminal.wait_for(f"the rule was not added; {row['id']} is still waiting", "[s] allow and add a rule")
        assert policy_file.read_text() == text and _version(fw) == before
        assert [r["state"] for r in pending(fw, "ci-rule")] == ["pending"]
        # s, then y: the held request passes and the policy with the rule is the new version.
        terminal.press("s")
        terminal.wait_for("[y] yes, allow and apply")
        terminal.press("y")
        assert finish(agent)[0] == "200"
        screen = terminal.wait_for(f"approved {row['id']}", f"applied: version {before + 1} is now in force")
        assert f"rule added to test.policy: {rule}" in screen
        assert rule in policy_file.read_text()
        assert fw.run("policy", "check", str(policy_file)).returncode == 0
        history = fw.run("policy", "history", check=True).stdout
        assert f"rule from approval {row['id']}" in history and f"by {getpass.getuser()} via prompt on " in history
        _passes_without_asking(fw, "ci-rule", url, before + 1)
        # Another agent's same request is still held: the rule is for this agent only.
        other = start_agent(fw, "ci-rule-other", url, TUNE)
        (held,) = wait_pending(fw, "ci-rule-other")
        fw.run("approvals", "deny", held["id"], check=True)
        assert finish(other)[0] == "403"
        terminal.press("q")
        assert wait_until(lambda: not _alive(terminal), 10, 0.1)
    finally:
        terminal.close()


def test_approve_suggest_asks_then_applies_the_rule(fw, module_upstream):
    text = _base(fw, module_upstream.port)
    policy_file = fw.home.parent / "test.policy"
    before = _version(fw)
    url = f"{module_upstream.base_url}/v1/fine_tuning/jobs"
    rule = 'allow POST /v1/fine_tuning/jobs when agent == "ci-cli-rule"'
    agent = start_agent(fw, "ci-cli-rule", url, TUNE)
    (row,) = wait_pending(fw, "ci-cli-rule")
    # The control: no (or no answer at all) changes nothing, and the request still waits.
    for answer in ("n\n", ""):
        declined = fw.run("approvals", "approve", row["id"], "--suggest", input=answer)
        assert declined.returncode == 1, declined
        assert f"+    {rule}" in declined.stdout
        assert f"nothing changed: the rule was not added and {row['id']} is still waiting" in declined.stderr
        assert policy_file.read_text() == text and _version(fw) == before
        assert [r["id"] for r in pending(fw, "ci-cli-rule")] == [row["id"]]
    done = fw.run("approvals", "approve", row["id"], "--suggest", input="y\n", check=True)
    assert finish(agent)[0] == "200"
    assert f"approved {row['id']}" in done.stdout and f"applied: version {before + 1} (sha256" in done.stdout
    assert f"rule added to {policy_file}" in done.stdout
    assert rule in policy_file.read_text()
    (latest,) = [v for v in json.loads(fw.run("policy", "history", "--json", check=True).stdout) if v["active"]]
    assert latest["version"] == before + 1
    assert latest["note"].startswith(f"rule from approval {row['id']} (POST ") and "via cli" in latest["note"]
    _passes_without_asking(fw, "ci-cli-rule", url, before + 1)


def test_a_rule_that_breaks_a_test_is_not_applied_and_the_request_passes_once(fw, module_upstream):
    port = module_upstream.port
    text = _base(fw, port, TESTS.format(port=port, agent="ci-breaks"))
    policy_file = fw.home.parent / "test.policy"
    before = _version(fw)
    url = f"{module_upstream.base_url}/v1/fine_tuning/jobs"
    agent = start_agent(fw, "ci-breaks", url, TUNE)
    (row,) = wait_pending(fw, "ci-breaks")
    refused = fw.run("approvals", "approve", row["id"], "--suggest", "--yes")
    assert refused.returncode == 1
    assert f"approved {row['id']}" in refused.stdout
    expect_line = text.splitlines().index(TESTS.format(port=port, agent="ci-breaks").splitlines()[2]) + 1
    assert f"FAIL  test.policy:{expect_line}  expect approve POST" in refused.stderr
    assert "expected approve, got allow" in refused.stderr
    assert "the rule was not added: with it 1 of 1 expectation(s) of the policy do not hold" in refused.stderr
    assert finish(agent)[0] == "200"  # allowed once
    assert policy_file.read_text() == text and _version(fw) == before
    # Nothing was added: the same request is held again.
    again = start_agent(fw, "ci-breaks", url, TUNE)
    (second,) = wait_pending(fw, "ci-breaks")
    fw.run("approvals", "deny", second["id"], check=True)
    assert finish(again)[0] == "403"


def test_a_policy_file_changed_since_it_was_applied_gets_the_review_file(fw, module_upstream, tmp_path):
    """The files are not the policy in force: said on stderr, the request approved once, the rule
    written for review (in the current folder: the file beside is not the one in force), nothing applied."""
    text = _base(fw, module_upstream.port)
    policy_file = fw.home.parent / "test.policy"
    edited = text + "\n# an edit not applied yet\n"
    policy_file.write_text(edited)
    before = _version(fw)
    url = f"{module_upstream.base_url}/v1/fine_tuning/jobs"
    agent = start_agent(fw, "ci-edited", url, TUNE)
    (row,) = wait_pending(fw, "ci-edited")
    done = fw.run("approvals", "approve", row["id"], "--suggest", cwd=tmp_path, check=True)
    assert finish(agent)[0] == "200"
    assert f"{policy_file} has changed since it was applied" in done.stderr
    assert "the rule is written for review instead" in done.stderr
    review = tmp_path / "suggested.policy"
    assert f"written to {review} for review" in done.stdout
    assert 'allow POST /v1/fine_tuning/jobs when agent == "ci-edited"' in review.read_text()
    assert policy_file.read_text() == edited and _version(fw) == before
