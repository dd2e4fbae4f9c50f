"""Budgets on turns taken over a Responses API WebSocket: a real proxy, the `websockets` client,
a stand-in that answers each `response.create` with known usage (docs/budgets.md, "WebSockets")."""

from __future__ import annotations

import json
import ssl
import time
from contextlib import contextmanager

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.security.support import mint_token, proxy_ca
from tests.support.fixtures import Firewall, poll, running_proxy
from tests.support.responses_ws import MODEL, USAGE, serving_responses_socket

PER_TURN = USAGE[0] + USAGE[1]  # tokens a turn counts against a `tokens` budget
ENDS = ("response.completed", "error")


@pytest.fixture
def socket_upstream(test_ca, tmp_path):
    with serving_responses_socket(test_ca, tmp_path) as upstream:
        yield upstream


@contextmanager
def agent_socket(fw: Firewall, proxy_port: int, upstream_port: int, agent: str = "worker", path: str = "/v1/responses"):
    token = mint_token(fw, agent)
    context = ssl.create_default_context(cafile=str(proxy_ca(fw)))
    with connect(
        f"wss://localhost:{upstream_port}{path}",
        proxy=f"http://{agent}:{token}@127.0.0.1:{proxy_port}",
        ssl=context,
        open_timeout=15,
        close_timeout=5,
    ) as socket:
        yield socket


def until_end(socket: ClientConnection) -> list[str]:
    """The messages the agent receives up to the end of a turn (`response.completed` or an error), raw."""
    received = []
    while True:
        received.append(socket.recv(timeout=15))
        if json.loads(received[-1])["type"] in ENDS:
            return received


def turn(socket: ClientConnection, mode: str = "", **fields) -> list[str]:
    """Send one `response.create`; what the agent receives for it, raw."""
    socket.send(json.dumps({"type": "response.create", "model": MODEL, "metadata": {"stand_in": mode}, **fields}))
    return until_end(socket)


def last(received: list[str]) -> dict:
    return json.loads(received[-1])


def policy(port: int, *lines: str) -> str:
    body = "".join(f"    {line}\n" for line in lines)
    return f"host localhost:{port} {{\n{body}    allow GET /v1/responses\n}}\n"


def turn_rows(fw: Firewall, count: int) -> list[dict]:
    rows = fw.audit_rows_once(lambda rows: len([r for r in rows if r["scheme"] == "wss"]) >= count)
    return sorted((r for r in rows if r["scheme"] == "wss"), key=lambda r: r["seq"])


def budget_use(fw: Firewall, rule: str, expected: float) -> float:
    """What `firewall budgets --json` says the budget `rule` used, once it says `expected` (the proxy
    publishes its counts every second); fails after 10 s with what it said."""

    def used() -> list[float]:
        shown = json.loads(fw.run("budgets", "--json", check=True).stdout)
        return [sum(u["used"] for u in b["use"]) for b in shown["budgets"] if b["rule"] == rule]

    return poll(used, lambda found: found == [pytest.approx(expected)], 10, f"the use of {rule!r}")[0]


def test_a_turn_is_counted_exactly_whole_or_split_across_frames(firewall, socket_upstream, upstream_ca_file):
    from firewall.budgets.prices import SHIPPED, cost_micros
    from firewall.budgets.usage import Usage

    port = socket_upstream.port
    tokens, dollars = "limit 1000000 tokens per day per agent", "limit $100 per day per agent"
    firewall.apply(policy(port, tokens, dollars))
    cost = cost_micros(Usage(*USAGE), SHIPPED[MODEL]) / 1_000_000
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port) as socket:
            received = turn(socket) + turn(socket, "fragmented")
        rows = turn_rows(firewall, 2)
        budget_use(firewall, tokens, 2 * PER_TURN)
        budget_use(firewall, dollars, 2 * cost)
    # The agent got every message exactly as the server sent it, the split one joined.
    assert [m.encode() for m in received] == socket_upstream.sent
    for row in rows:  # one row per turn, with its own request id
        assert (row["input_tokens"], row["output_tokens"], row["cached_tokens"]) == USAGE
        assert (row["model"], row["cost_usd"], row["decision"], row["method"]) == (MODEL, cost, "allow", "GET")
        assert row["path"] == "/v1/responses" and "WebSocket turn on req_" in row["detail"]
        assert row["bytes_out"] > 0 and row["bytes_in"] > 0
    assert len({row["request_id"] for row in rows}) == 2
    upgrade = [r for r in firewall.audit_rows() if r["scheme"] == "https"]
    assert [r["input_tokens"] for r in upgrade] == [None]  # the upgrade itself counts nothing


def test_a_socket_without_budgets_is_not_read(firewall, socket_upstream, upstream_ca_file):
    """The control of the one above: no budget on the host, no turn rows, the messages pass as sent."""
    port = socket_upstream.port
    firewall.apply(policy(port))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port) as socket:
            received = turn(socket, "fragmented")
        rows = firewall.audit_rows_once(lambda rows: len(rows) >= 1)
    assert [m.encode() for m in received] == socket_upstream.sent
    assert [r["scheme"] for r in rows] == ["https"]


def test_a_spent_budget_refuses_the_next_turn_and_not_another_agents(firewall, socket_upstream, upstream_ca_file):
    port = socket_upstream.port
    limit = 2 * PER_TURN + 1  # two turns leave it not quite spent; the third spends it
    firewall.apply(policy(port, f"limit {limit} tokens per day per agent"))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port) as socket:
            for _ in range(3):
                assert last(turn(socket))["type"] == "response.completed"
            refused = turn(socket)
            assert socket_upstream.creates() == 3  # the fourth never went upstream
            socket.send(json.dumps({"type": "response.processed", "response_id": "resp_3"}))  # no turn: passes
            again = turn(socket)  # the socket stays open, and refuses again
        with pytest.raises(InvalidStatus) as opening:  # a new socket: its upgrade is refused (HTTP)
            with agent_socket(firewall, proxy.port, port):
                pass
        with agent_socket(firewall, proxy.port, port, agent="other") as other:  # control: a budget per agent
            assert last(turn(other))["type"] == "response.completed"
        rows = turn_rows(firewall, 6)
    upgrade = opening.value.response
    # 426, not 429: Codex reads no body from a refused upgrade and would wait out Retry-After; on 426
    # it sends the turn as a POST, whose 429 carries the body it stops on (test_codex_chatgpt.py).
    assert upgrade.status_code == 426 and int(upgrade.headers["retry-after"]) > 0
    refusal = json.loads(upgrade.body)["error"]  # on a Responses path, in the shape Codex stops on
    assert (refusal["type"], refusal["code"], refusal["resets_at"]) == (
        "usage_limit_reached",
        "budget_exhausted",
        last(refused)["error"]["resets_at"],
    )
    assert (
        upgrade.headers["x-codex-promo-message"]
        == f"Firewall budget spent: limit {limit} tokens per day per agent ({refusal['request_id']})"
    )
    assert len(refused) == 1 and last(again)["error"]["code"] == "budget_exhausted"
    error = last(refused)
    assert (error["type"], error["status"]) == ("error", 429)
    # The Responses backend's type for a spent allowance (Codex stops on it), the firewall's code.
    assert (error["error"]["type"], error["error"]["code"]) == ("usage_limit_reached", "budget_exhausted")
    assert error["error"]["resets_at"] % 3600 == 0 and error["error"]["resets_at"] > time.time()
    assert error["error"]["budget"]["used"] == 3 * PER_TURN and error["error"]["budget"]["limit"] == limit
    assert error["error"]["message"].startswith("budget spent for agent worker: ")
    assert 0 < int(error["headers"]["retry-after"]) <= 86400
    assert error["headers"]["x-request-id"] == error["error"]["request_id"]
    assert {"type": "response.processed", "response_id": "resp_3"} in socket_upstream.messages
    assert socket_upstream.creates() == 4  # three of worker's, one of other's
    decisions = [(r["agent"], r["decision"], r["reason"]) for r in rows]
    assert decisions[3:5] == [("worker", "limit", "budget_exhausted")] * 2
    assert [d[1] for d in decisions[:3]] == ["allow"] * 3 and decisions[5][:2] == ("other", "allow")
    assert rows[3]["request_id"] == error["error"]["request_id"] and rows[3]["input_tokens"] is None
    assert rows[3]["rule"] == "test.policy:2"


def test_a_message_the_proxy_cannot_read_is_refused_when_the_budget_is_spent(
    firewall, socket_upstream, upstream_ca_file
):
    """Fail closed: a client message that might start a turn on some server (not JSON, or naming
    `type` twice) is checked as one. Control: while the budget is not spent they go on, and the
    server's error for them bills nothing."""
    port = socket_upstream.port
    rule = f"limit {PER_TURN} tokens per day per agent"
    firewall.apply(policy(port, rule))
    odd = ['{"type": "response.processed", "type": "bogus"}', "not json"]
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port) as socket:
            for message in odd:  # not spent yet: they reach the server, which refuses them
                socket.send(message)
                assert last(until_end(socket))["error"]["code"] == "invalid_event"
            assert last(turn(socket))["type"] == "response.completed"  # spends it
            for message in odd:
                socket.send(message)
                assert last(until_end(socket))["error"]["code"] == "budget_exhausted"
        budget_use(firewall, rule, PER_TURN)  # the server's refusals billed nothing
    assert [m for m in socket_upstream.messages if not isinstance(m, dict) or "model" not in m] == [
        {"type": "bogus"},  # as the stand-in's parser reads it: the last `type`
        "not json",
    ]


@pytest.mark.parametrize("setting", ["max_tokens", "refuse"])
def test_a_turn_without_usage_follows_usage_unreadable(firewall, socket_upstream, upstream_ca_file, setting):
    port = socket_upstream.port
    rule = "limit 100000 tokens per day per agent"
    firewall.apply(policy(port, rule, f"usage unreadable {setting}"))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port) as socket:
            turn(socket)  # control: a readable turn counts its usage
            turn(socket, "no_usage", max_output_tokens=600)
            after = last(turn(socket))
        rows = turn_rows(firewall, 3)
        if setting == "max_tokens":
            budget_use(firewall, rule, 2 * PER_TURN + 600)
    assert rows[0]["input_tokens"] == USAGE[0] and rows[1]["input_tokens"] is None
    if setting == "max_tokens":
        assert after["type"] == "response.completed"
        assert "usage unreadable: counted max_tokens 600" in rows[1]["detail"]
    else:
        assert after["error"]["code"] == "budget_exhausted" and rows[2]["decision"] == "limit"
        assert "usage unreadable: the budget is spent until it resets" in rows[1]["detail"]


def test_a_turn_the_server_refuses_is_not_billed_and_one_never_ended_counts_as_unreadable(
    firewall, socket_upstream, upstream_ca_file
):
    port = socket_upstream.port
    rule = "limit 100000 tokens per day per agent reserve max_tokens"
    firewall.apply(policy(port, rule))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port) as socket:
            assert last(turn(socket, "error", max_output_tokens=500))["status"] == 400  # not billed: 500 back
            assert last(turn(socket))["type"] == "response.completed"  # control: billed
            create = {"type": "response.create", "model": MODEL, "metadata": {"stand_in": "silent"}}
            socket.send(json.dumps({**create, "max_output_tokens": 700}))
            assert json.loads(socket.recv(timeout=15))["type"] == "response.created"
        rows = turn_rows(firewall, 3)  # the socket closed with the silent turn open
        budget_use(firewall, rule, PER_TURN + 700)  # the silent one: begun, never ended, its max_tokens
    assert "the upstream answered the turn with an error (stand_in_refused)" in rows[0]["detail"]
    assert rows[0]["input_tokens"] is None and rows[1]["input_tokens"] == USAGE[0]
    assert "the WebSocket closed before the turn ended" in rows[2]["detail"]


def test_report_mode_lets_a_turn_over_budget_go_on_marked(firewall, socket_upstream, upstream_ca_file):
    port = socket_upstream.port
    firewall.apply("mode report\n" + policy(port, "limit 10 tokens per day per agent"))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port) as socket:
            assert last(turn(socket))["type"] == "response.completed"
            assert last(turn(socket))["type"] == "response.completed"  # over budget, let through
        rows = turn_rows(firewall, 2)
    assert [r["decision"] for r in rows] == ["allow", "would_limit"]
    assert rows[1]["input_tokens"] == USAGE[0]


def _echo(fw: Firewall, proxy_port: int, upstream_port: int) -> str:
    token = mint_token(fw, "worker")
    context = ssl.create_default_context(cafile=str(proxy_ca(fw)))
    url = f"wss://localhost:{upstream_port}/ws/realtime"
    with connect(url, proxy=f"http://worker:{token}@127.0.0.1:{proxy_port}", ssl=context, open_timeout=15) as socket:
        socket.send("hi")
        return str(socket.recv(timeout=10))


@pytest.mark.parametrize("budget", ["", "limit 1000000 tokens per day per agent", "limit $5 per day per agent"])
def test_a_socket_whose_use_cannot_be_counted_is_refused_under_a_budget(firewall, upstream, upstream_ca_file, budget):
    """Only a Responses API socket's turns are read: any other socket under a budget (a Realtime
    API socket, say) could spend without limit, so its upgrade is refused. Control: no budget."""
    firewall.apply(f"host localhost:{upstream.port} {{\n    {budget}\n    allow GET /ws/**\n}}\n")
    with running_proxy(firewall, upstream_ca_file) as proxy:
        if not budget:
            assert _echo(firewall, proxy.port, upstream.port) == "echo: hi"
            return
        with pytest.raises(InvalidStatus) as refused:
            _echo(firewall, proxy.port, upstream.port)
        rows = firewall.audit_rows_once(lambda rows: len(rows) >= 1)
    assert refused.value.response.status_code == 426
    assert json.loads(refused.value.response.body)["error"]["type"] == "budget_uncountable"
    assert [seen.path for seen in upstream.seen if seen.path.startswith("/ws")] == []  # never reached it
    assert [(r["decision"], r["reason"]) for r in rows] == [("block", "budget_uncountable")]
