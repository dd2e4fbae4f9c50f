"""Reading the decision corpus (corpus/cases.json); the format is described in test_corpus.py."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from firewall.policy import Request

CORPUS = Path(__file__).parent / "corpus"
CASES: list[dict] = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))


def request_of(case: dict) -> Request:
    headers = tuple((name, value) for name, value in case.get("headers", ()))
    agent = case.get("agent")
    if "json" in case:
        request = Request.with_json(case["method"], case["url"], case["json"], agent=agent, headers=headers)
    else:
        body = case.get("body", "").encode()
        request = Request.from_url(case["method"], case["url"], agent=agent, headers=headers, body=body)
    if "addresses" in case:
        request = replace(request, addresses=tuple(case["addresses"]))
    if "body_size" in case:
        request = replace(request, body_size=case["body_size"], body_complete=False)
    return request


def case_id(case: dict) -> str:
    decided_by = case["line"] if case["line"] is not None else case["reason"]
    agent = f" as {case['agent']}" if case.get("agent") else ""
    return f"{case['policy']}:{decided_by} {case['method']} {case['url']}{agent}"
