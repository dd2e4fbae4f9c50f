"""Stable rule names and per-block report mode, end to end: the real CLI, a real proxy, real agents.

A policy applied from two working folders names its rules the same; a grant of a rule with an
`as "name"` survives an edit of that rule; a grant whose rule leaves the policy is reported and
ended; a host block in `mode report` lets through what it would block while the rest enforces.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.e2e.helpers import rule_line
from tests.e2e.test_approvals import BIG_CHAT, TUNE, finish, start_agent, wait_pending
from tests.support.fixtures import APPLIED, REAL_KEY, Firewall

POLICY = """\
approval timeout 30s

credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}

host localhost:{port} {{
    inject openai
    {tune}
    approve POST /v1/chat/completions when json.max_tokens > {big} reason "a big completion" as "chat.big"
    block POST /v1/files
    allow
}}

host 127.0.0.1:{port} {{
    mode report
    block POST /v1/files
    allow
}}
"""
TUNE_RULE = 'approve POST /v1/fine_tuning/** reason "billed"'


@pytest.fixture(scope="module")
def fw(module_firewall, module_upstream, module_proxy) -> Firewall:
    module_firewall.add_secret("openai", REAL_KEY, provider="openai")
    return module_firewall


def apply_from(fw: Firewall, cwd, path: str) -> str:
    """`policy apply PATH` run in `cwd`; once the running proxy has the version in force."""
    result = fw.run("policy", "apply", path, cwd=cwd, check=True)
    applied = APPLIED.search(result.stdout)
    if applied:
        fw.wait_for_proxy_log(lambda lines: any(f"policy version {applied[1]} (" in line for line in lines))
    return result.stdout


def grants_of(fw: Firewall, agent: str) -> list[dict]:
    return [g for g in json.loads(fw.run("approvals", "grants", "--json", check=True).stdout) if g["agent"] == agent]


def test_named_grants_survive_edits_and_grants_of_removed_rules_end(fw, module_upstream):
    port = module_upstream.port
    work = fw.home.parent / "work"
    work.mkdir()
    text = POLICY.format(port=port, tune=TUNE_RULE, big=4000)
    (work / "ops.policy").write_text(text)
    assert "applied: version" in apply_from(fw, fw.home.parent, "work/ops.policy")
    assert apply_from(fw, work, "ops.policy").startswith("unchanged: version")  # same names, same sha256
    tune_rule = f"ops.policy:{rule_line(text, 'fine_tuning')}"

    base = module_upstream.base_url
    chat = start_agent(fw, "names", f"{base}/v1/chat/completions", BIG_CHAT)
    (held,) = wait_pending(fw, "names")
    assert held["rule"] == "chat.big"
    fw.run("approvals", "approve", held["id"], "--for", "10m", check=True)
    assert finish(chat)[0] == "200"
    tune = start_agent(fw, "names", f"{base}/v1/fine_tuning/jobs", TUNE)
    (held,) = wait_pending(fw, "names")
    assert held["rule"] == tune_rule
    fw.run("approvals", "approve", held["id"], "--for", "10m", check=True)
    assert finish(tune)[0] == "200"
    assert sorted(g["rule"] for g in grants_of(fw, "names")) == sorted(["chat.big", tune_rule])

    # Edit the named rule (and move it up a line) and remove the fine-tuning rule.
    edited = POLICY.format(port=port, tune="# fine-tuning is not allowed any more", big=5000)
    (work / "ops.policy").write_text(edited)
    out = apply_from(fw, work, "ops.policy")
    assert "ended grant grt_" in out and f"rule {tune_rule} ({TUNE_RULE})" in out and "agent names" in out
    assert [g["rule"] for g in grants_of(fw, "names")] == ["chat.big"]  # the named grant survived the edit
    status, _, stderr = finish(start_agent(fw, "names", f"{base}/v1/chat/completions", BIG_CHAT))
    assert status == "200" and "waiting for approval" not in stderr

    rows = fw.audit_rows_once(lambda rows: sum(r["agent"] == "names" for r in rows) >= 3)
    assert [r["rule"] for r in rows if r["agent"] == "names"] == ["chat.big", tune_rule, "chat.big"]


def test_a_grant_whose_rule_is_gone_is_reported_by_approvals_grants(fw, module_upstream):
    """A grant left behind by something other than `policy apply` (here a row as an older firewall
    wrote it, naming its rule by an absolute path) is reported by `approvals grants` and ended; the
    grant of a rule still in force stays (the control)."""
    text = POLICY.format(port=module_upstream.port, tune=TUNE_RULE, big=4000)
    fw.apply(text, name="gone.policy")
    tune = start_agent(fw, "gone", f"{module_upstream.base_url}/v1/fine_tuning/jobs", TUNE)
    (held,) = wait_pending(fw, "gone")
    fw.run("approvals", "approve", held["id"], "--for", "10m", check=True)
    assert finish(tune)[0] == "200"
    (live,) = grants_of(fw, "gone")
    with sqlite3.connect(fw.home / "firewall.db") as db:
        db.execute(
            "INSERT INTO approval_grants SELECT 'grt_old', agent, '/home/me/gone.policy:9', rule_text, created, "
            "expires, created_by, approval_id, NULL, NULL FROM approval_grants WHERE id = ?",
            [live["id"]],
        )
    listed = fw.run("approvals", "grants", check=True).stdout
    assert "ended grant grt_old: rule /home/me/gone.policy:9" in listed
    assert [g["id"] for g in grants_of(fw, "gone")] == [live["id"]]
    assert "grt_old" not in fw.run("approvals", "grants", check=True).stdout  # reported once


def test_a_host_block_in_report_mode_audits_while_the_rest_enforces(fw, module_upstream):
    port = module_upstream.port
    fw.apply(POLICY.format(port=port, tune=TUNE_RULE, big=4000), name="report.policy")
    reported = start_agent(fw, "report", f"https://127.0.0.1:{port}/v1/files", "{}")
    assert finish(reported)[0] == "200"
    enforced = start_agent(fw, "report", f"{module_upstream.base_url}/v1/files", "{}")
    assert finish(enforced)[0] == "403"
    rows = [r for r in fw.audit_rows_once(lambda rows: sum(r["agent"] == "report" for r in rows) >= 2)]
    rows = [r for r in rows if r["agent"] == "report"]
    assert [(r["host"], r["decision"]) for r in rows] == [("127.0.0.1", "would_block"), ("localhost", "block")]
