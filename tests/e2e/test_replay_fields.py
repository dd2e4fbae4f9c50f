"""The audit log records the request fields a policy's conditions read (a real proxy run), and
`policy replay` decides a condition on them exactly; a condition on a field it did not record stays
unknown (the control)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.helpers import run_client
from tests.support.fixtures import Firewall

POLICY = """\
host localhost:{port} {{
    allow GET /v1/models
    allow POST /v1/chat/completions when {chat}
}}
"""
IN_FORCE = 'json.model == "gpt-4o-mini"'


@pytest.fixture(scope="module")
def recorded(module_firewall, module_upstream, module_proxy, tmp_path_factory) -> tuple[Firewall, int]:
    fw, port = module_firewall, module_upstream.port
    fw.apply(POLICY.format(port=port, chat=IN_FORCE))
    out = tmp_path_factory.mktemp("clients") / "a1.json"
    run = run_client(fw, "httpx", module_upstream.base_url, "chat", "models", agent="a1", out=out)
    assert [r["status"] for r in run.results] == [200, 200], run.stderr
    fw.audit_rows_once(lambda rows: sum(r["agent"] == "a1" for r in rows) >= 2)
    return fw, port


def replay(fw: Firewall, port: int, chat: str) -> dict:
    path = fw.write_policy("candidate.policy", POLICY.format(port=port, chat=chat))
    return json.loads(fw.run("policy", "replay", str(path), "--since", "1h", "--json").stdout)


def test_the_audit_row_holds_the_field_the_condition_read_and_still_verifies(recorded):
    fw, _ = recorded
    rows = fw.audit_rows()
    chat = next(r for r in rows if r["path"] == "/v1/chat/completions")
    assert json.loads(chat["fields"]) == {"json.model": "gpt-4o-mini"}
    assert fw.run("audit", "verify").returncode == 0


def test_a_condition_on_a_recorded_field_replays_exactly(recorded):
    fw, port = recorded
    data = replay(fw, port, 'json.model == "o3"')
    assert data["counts"]["allow_to_block"] == 1 and data["unknown"] == 0
    assert replay(fw, port, 'json.model in ["gpt-4o-mini", "o3"]')["changed"] == 0  # the control: still allowed


def test_a_condition_on_a_field_that_was_not_recorded_stays_unknown(recorded):
    fw, port = recorded
    data = replay(fw, port, 'json.model == "gpt-4o-mini" and header.x-team == "red"')
    assert data["unknown"] == 1 and data["changed"] == 0
