"""Compaction spends a budget like any other turn (docs/budgets.md, "Compaction").

Two shapes, each with stand-ins answering as the provider does:

- Codex 0.16x compacts with an ordinary Responses turn (codex-rs `compact_remote_v2`): a
  `response.create` on the socket (or a streamed POST) whose input ends with a
  `compaction_trigger` item, answered with one `compaction` output item and
  `response.completed` with its usage;
- the public API's `POST /v1/responses/compact` (and older Codex's
  `/backend-api/codex/responses/compact`): one JSON `response.compaction` object with a
  Responses `usage`. Its answer used to be of no known shape, so it spent a whole budget as
  unreadable.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_budgets import _client, _post
from tests.e2e.test_budgets_ws import PER_TURN, agent_socket, budget_use, last, policy, turn, turn_rows
from tests.support.fixtures import running_proxy
from tests.support.llm_upstream import COMPACTION, serving_llm_upstream
from tests.support.responses_ws import COMPACTION_USAGE, MODEL, USAGE, serving_responses_socket

TRIGGER = [{"type": "message", "role": "user", "content": "say hi"}, {"type": "compaction_trigger"}]
PER_COMPACTION = COMPACTION_USAGE[0] + COMPACTION_USAGE[1]


@pytest.fixture
def socket_upstream(test_ca, tmp_path):
    with serving_responses_socket(test_ca, tmp_path) as upstream:
        yield upstream


@pytest.fixture
def llm(test_ca, tmp_path):
    with serving_llm_upstream(test_ca, tmp_path) as upstream:
        yield upstream


def test_a_compaction_turn_on_the_socket_counts_and_is_refused_when_spent(firewall, socket_upstream, upstream_ca_file):
    """A turn, then a compaction: each counts what it reported. The budget then spent, the next
    compaction is refused like any turn and never reaches the server."""
    port = socket_upstream.port
    rule = f"limit {PER_TURN + PER_COMPACTION} tokens per day per agent"
    firewall.apply(policy(port, rule))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port) as socket:
            assert last(turn(socket))["type"] == "response.completed"  # control: an ordinary turn
            compacted = turn(socket, input=TRIGGER)
            refused = last(turn(socket, input=TRIGGER))
        rows = turn_rows(firewall, 3)
        budget_use(firewall, rule, PER_TURN + PER_COMPACTION)
    assert [json.loads(m)["type"] for m in compacted][-2:] == ["response.output_item.done", "response.completed"]
    assert json.loads(compacted[-2])["item"]["type"] == "compaction"  # the stand-in answered a compaction
    assert (refused["type"], refused["error"]["code"]) == ("error", "budget_exhausted")
    assert socket_upstream.creates() == 2
    figures = [(r["decision"], r["input_tokens"], r["output_tokens"], r["cached_tokens"]) for r in rows]
    assert figures == [("allow", *USAGE), ("allow", *COMPACTION_USAGE), ("limit", None, None, None)]


@pytest.mark.parametrize("path", ["/v1/responses/compact", "/backend-api/codex/responses/compact"])
def test_a_compaction_request_counts_its_usage_exactly(firewall, llm, upstream_ca_file, path):
    from firewall.budgets.prices import SHIPPED, cost_micros
    from firewall.budgets.usage import Usage

    tokens, dollars = "limit 1000000 tokens per day per agent", "limit $100 per day per agent"
    firewall.apply(f"host localhost:{llm.port} {{\n    {tokens}\n    {dollars}\n    allow POST\n}}\n")
    with running_proxy(firewall, upstream_ca_file) as proxy:
        client = _client(firewall, proxy.port, "worker")
        status, _, body = _post(client, f"{llm.base_url}{path}", {"model": MODEL, "input": TRIGGER[:1]})
        rows = firewall.audit_rows_once(lambda rows: len(rows) >= 1)
        budget_use(firewall, tokens, COMPACTION[0] + COMPACTION[1])
    assert status == 200 and json.loads(body)["object"] == "response.compaction"  # passed on unchanged
    row = rows[0]
    assert (row["input_tokens"], row["output_tokens"], row["cached_tokens"], row["model"]) == (*COMPACTION, MODEL)
    assert row["cost_usd"] == cost_micros(Usage(*COMPACTION), SHIPPED[MODEL]) / 1_000_000
    assert row["detail"] is None  # read, not guessed


def test_a_spent_budget_refuses_a_compaction_in_the_shape_codex_stops_on(firewall, llm, upstream_ca_file):
    rule = "limit 1000 tokens per day per agent"
    firewall.apply(f"host localhost:{llm.port} {{\n    {rule}\n    allow POST\n}}\n")
    url = f"{llm.base_url}/backend-api/codex/responses/compact"
    with running_proxy(firewall, upstream_ca_file) as proxy:
        client = _client(firewall, proxy.port, "worker")
        assert _post(client, url, {"model": MODEL})[0] == 200  # 9,700 tokens: spent
        status, headers, body = _post(client, url, {"model": MODEL})
    assert status == 429 and int(headers["retry-after"]) > 0
    error = json.loads(body)["error"]
    assert (error["type"], error["code"]) == ("usage_limit_reached", "budget_exhausted")
    assert headers["x-codex-promo-message"].startswith(f"Firewall budget spent: {rule} (")
    assert len(llm.seen) == 1


def test_a_compaction_without_usage_follows_usage_unreadable(firewall, llm, upstream_ca_file):
    """The control of the exact count: an answer that reports no usage (only the `output` codex-rs
    reads) cannot be read, so it counts by the block's `usage unreadable`: `refuse` spends the
    budget, where a compaction that reported its usage left room."""
    rule = "limit 100000 tokens per day per agent"
    firewall.apply(f"host localhost:{llm.port} {{\n    {rule}\n    usage unreadable refuse\n    allow POST\n}}\n")
    base = llm.base_url
    with running_proxy(firewall, upstream_ca_file) as proxy:
        client = _client(firewall, proxy.port, "worker")
        codes = [_post(client, f"{base}/v1/responses/compact", {"model": MODEL})[0] for _ in range(2)]
        codes.append(_post(client, f"{base}/v1/no-usage/responses/compact", {"model": MODEL})[0])
        codes.append(_post(client, f"{base}/v1/responses/compact", {"model": MODEL})[0])
        rows = firewall.audit_rows_once(lambda rows: len(rows) >= 4)
    assert codes == [200, 200, 200, 429]
    details = [row["detail"] for row in sorted(rows, key=lambda row: row["seq"])]
    assert details[:2] == [None, None]
    assert "usage unreadable: the budget is spent until it resets" in details[2]
