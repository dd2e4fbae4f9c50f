"""The decision corpus: the policies in corpus/, and in corpus/cases.json the
requests sent to them with the exact decision each must get.

A case names its `policy`, `method` and `url`, and optionally `agent`,
`headers` ([[name, value], ...]), a `json` body or a raw text `body`,
`body_size`: the real size of a body of which the proxy read only the start
(the body is then incomplete, so its JSON cannot be read), and `addresses`:
what a DNS lookup of the host gave.

What must come out: `expect` (the verdict), `reason`, `line` (of the rule or
line that decided, null for none); and where they are not empty or default:
`would` (mode report), `inject` (credential names, in order), `limits`
([amount, agent counted or null], in policy order), `rule_reason`,
`approval_timeout` (seconds, 120 by default) and `path` (the canonical path,
checked when given).
"""

from __future__ import annotations

from functools import cache

import pytest

from firewall.policy import CompiledPolicy, Decision, decide, load_policy
from tests.policy.corpus_cases import CASES, CORPUS, case_id, request_of

OPTIONAL = {"would": None, "inject": [], "limits": [], "rule_reason": None, "approval_timeout": 120}


@cache
def compiled(name: str) -> CompiledPolicy:
    result = load_policy([CORPUS / name])
    assert result.warnings == ()
    return result.policy


def outcome(decision: Decision) -> dict:
    """The decision in the corpus's own terms."""
    return {
        "expect": decision.verdict.value,
        "reason": decision.reason.value,
        "line": decision.rule.line if decision.rule else None,
        "would": decision.would.value if decision.would else None,
        "inject": [injection.credential for injection in decision.inject],
        "limits": [[limit.amount, limit.agent] for limit in decision.limits],
        "rule_reason": decision.rule_reason,
        "approval_timeout": decision.approval_timeout,
    }


def expected_outcome(case: dict) -> dict:
    return {"expect": case["expect"], "reason": case["reason"], "line": case["line"]} | {
        key: case.get(key, default) for key, default in OPTIONAL.items()
    }


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_decision(case):
    decision = decide(compiled(case["policy"]), request_of(case), now=0.0)
    assert outcome(decision) == expected_outcome(case)
    if decision.rule is not None:
        assert decision.rule.file == case["policy"]  # named relative to the policy's folder
    if "path" in case:
        assert decision.canonical_path == case["path"]


def test_every_corpus_policy_has_cases():
    assert {path.name for path in CORPUS.glob("*.policy")} == {case["policy"] for case in CASES}


def test_every_case_spells_its_keys_right():
    known = {
        "policy",
        "method",
        "url",
        "agent",
        "headers",
        "json",
        "body",
        "body_size",
        "addresses",
        "expect",
        "reason",
        "line",
        "path",
        *OPTIONAL,
    }
    assert [sorted(set(case) - known) for case in CASES if set(case) - known] == []
