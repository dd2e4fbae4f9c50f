"""Stable rule names: relative to the policy's folder, or given with `as "name"`; report mode per host block."""

from __future__ import annotations

import os

from firewall.policy import Request, compile_source, decide, load_policy
from firewall.policy.formatter import format_policy
from firewall.policy.parser import parse_policy

POLICY = """\
host api.example.com {
    allow GET /v1/models
    approve POST /v1/chat/** reason "billed" as "openai.chat"
}

host db.example.com:5432 {
    allow tcp as "db"
}
"""


def test_rule_file_names_do_not_depend_on_the_working_folder(tmp_path, monkeypatch):
    folder = tmp_path / "work" / "policies"
    folder.mkdir(parents=True)
    (folder / "my.policy").write_text(POLICY)
    results = []
    for cwd, arg in [(folder, "my.policy"), (tmp_path, "work/policies/my.policy"), (tmp_path / "work", "policies")]:
        monkeypatch.chdir(cwd)
        results.append(load_policy([arg]).policy)
    locations = {p.blocks[0].rules[0].source.location for p in results}
    assert locations == {"my.policy:2"}
    assert len({p.sha256 for p in results}) == 1


def test_files_in_sub_folders_are_named_from_the_folder_given(tmp_path, monkeypatch):
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "a.policy").write_text("default block\n")
    (tmp_path / "b.policy").write_text("host x.example.com {\n    allow GET /\n}\n")
    monkeypatch.chdir(tmp_path.parent)
    policy = load_policy([tmp_path / "team" / "a.policy", tmp_path / "b.policy"]).policy
    assert policy.default_source.location == "team/a.policy:1"
    assert policy.blocks[0].rules[0].source.location == "b.policy:2"
    assert os.sep not in policy.default_source.file.replace("/", "")


def test_a_named_rule_is_known_by_its_name():
    policy = compile_source(POLICY, "p.policy").policy
    plain, named = policy.blocks[0].rules
    assert (plain.source.id, plain.source.name) == ("p.policy:2", "")
    assert (named.source.id, named.source.location) == ("openai.chat", "p.policy:3")
    assert policy.blocks[1].tcp.source.id == "db"
    decision = decide(policy, Request.from_url("POST", "https://api.example.com/v1/chat/x"), 0.0)
    assert decision.rule.id == "openai.chat"


def test_names_and_block_modes_survive_formatting():
    text = 'host a.example.com {\n  mode   report\n allow GET /x   as "x"\n}\n'
    formatted = format_policy(parse_policy(text, "f.policy"))
    assert formatted == 'host a.example.com {\n    mode report\n    allow GET /x as "x"\n}\n'


def test_an_unnamed_policy_keeps_the_hash_it_had():
    """Names and block modes are optional fields: a policy that uses neither hashes as before."""
    policy = compile_source("host a.example.com {\n    allow GET /x\n}\n", "p.policy").policy
    assert '"name"' not in policy.to_json() and '"mode":null' not in policy.to_json()


REPORT_BLOCK = """\
host new-api.example.com {
    mode report
    block POST /**
    approve DELETE /**
}

host api.example.com {
    block POST /**
}
"""


def decide_on(policy_text, method, url):
    return decide(compile_source(policy_text).policy, Request.from_url(method, url), 0.0)


def test_a_host_block_in_report_mode_lets_through_and_records_what_it_would_do():
    for method, would in (("POST", "block"), ("DELETE", "approve"), ("GET", "block")):  # GET: the default
        decision = decide_on(REPORT_BLOCK, method, "https://new-api.example.com/v1/x")
        assert (decision.verdict.value, decision.would.value, decision.mode.value) == ("allow", would, "report")
    # the control: the other block of the same policy enforces
    decision = decide_on(REPORT_BLOCK, "POST", "https://api.example.com/v1/x")
    assert (decision.verdict.value, decision.would, decision.mode.value) == ("block", None, "enforce")


def test_a_block_in_enforce_mode_enforces_under_a_report_policy():
    text = "mode report\n" + REPORT_BLOCK.replace("mode report", "mode enforce")
    decision = decide_on(text, "POST", "https://new-api.example.com/v1/x")
    assert (decision.verdict.value, decision.would) == ("block", None)
    decision = decide_on(text, "POST", "https://api.example.com/v1/x")  # the policy's mode elsewhere
    assert (decision.verdict.value, decision.would.value) == ("allow", "block")


def test_report_mode_of_a_block_does_not_lift_the_safety_checks():
    text = REPORT_BLOCK.replace("mode report", "mode report\n    allow GET /**")
    decision = decide_on(text, "GET", "https://new-api.example.com/a/%2e%2e/%2e%2e/etc")
    assert decision.verdict.value == "block" and decision.reason.value == "ambiguous_path"
    decision = decide_on(text, "GET", "https://new-api.example.com/v1/ok")  # the control
    assert decision.verdict.value == "allow" and decision.reason.value == "rule"
