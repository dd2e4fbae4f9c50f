"""Request limits on turns taken over a Responses API WebSocket: each `response.create` counts, as a
`POST /v1/responses` would, not only the upgrade that opened the socket (docs/budgets.md,
"WebSockets"). A real proxy, the `websockets` client, the stand-in of tests/support/responses_ws.py.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_budgets_ws import agent_socket, last, policy, turn, turn_rows
from tests.support.fixtures import running_proxy
from tests.support.responses_ws import serving_responses_socket

# The upgrade is a request and counts once; each turn counts once more.
LIMIT = "limit 3 per minute per agent"


@pytest.fixture
def socket_upstream(test_ca, tmp_path):
    with serving_responses_socket(test_ca, tmp_path) as upstream:
        yield upstream


def test_a_turn_over_a_request_limit_is_refused_with_an_error_event(firewall, socket_upstream, upstream_ca_file):
    port = socket_upstream.port
    firewall.apply(policy(port, LIMIT))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port) as socket:
            answered = [last(turn(socket)) for _ in range(2)]  # the upgrade and two turns: the limit is full
            refused = turn(socket)
            assert socket_upstream.creates() == 2  # the third turn never went upstream
            socket.send(json.dumps({"type": "response.processed", "response_id": "resp_2"}))  # starts no turn
            again = turn(socket)  # the socket stays open, and refuses again
        with agent_socket(firewall, proxy.port, port, agent="other") as other:  # a count per agent
            assert last(turn(other))["type"] == "response.completed"
        rows = turn_rows(firewall, 5)
    assert [a["type"] for a in answered] == ["response.completed"] * 2
    assert len(refused) == 1 and last(again)["error"]["code"] == "rate_limited"
    error = last(refused)
    assert (error["type"], error["status"]) == ("error", 429)  # the HTTP refusal's status and body
    assert (error["error"]["type"], error["error"]["code"]) == ("rate_limited", "rate_limited")
    assert error["error"]["message"].startswith(f"rate limit reached: {LIMIT}; retry after ")
    assert error["error"]["rule"] == "test.policy:2"
    assert 0 < int(error["headers"]["retry-after"]) <= 60
    assert error["headers"]["x-request-id"] == error["error"]["request_id"]
    assert {"type": "response.processed", "response_id": "resp_2"} in socket_upstream.messages
    assert socket_upstream.creates() == 3  # two of worker's, one of other's
    decisions = [(r["agent"], r["decision"], r["reason"]) for r in rows]
    assert [d[1] for d in decisions[:2]] == ["allow"] * 2
    assert decisions[2:4] == [("worker", "limit", "rate_limited")] * 2
    assert decisions[4][:2] == ("other", "allow")
    assert rows[2]["request_id"] == error["error"]["request_id"] and rows[2]["rule"] == "test.policy:2"
    assert rows[2]["input_tokens"] is None and rows[0]["input_tokens"] is not None  # counted turns show usage


def test_turns_under_the_request_limit_all_go_through(firewall, socket_upstream, upstream_ca_file):
    """The control: the same socket and turns under a limit with room for them."""
    port = socket_upstream.port
    firewall.apply(policy(port, "limit 10 per minute per agent"))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port) as socket:
            answered = [last(turn(socket)) for _ in range(5)]
        rows = turn_rows(firewall, 5)
    assert [a["type"] for a in answered] == ["response.completed"] * 5
    assert socket_upstream.creates() == 5
    assert [r["decision"] for r in rows] == ["allow"] * 5


def test_report_mode_lets_a_turn_over_a_request_limit_go_on_marked(firewall, socket_upstream, upstream_ca_file):
    port = socket_upstream.port
    firewall.apply("mode report\n" + policy(port, "limit 2 per minute per agent"))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port) as socket:
            answered = [last(turn(socket)) for _ in range(2)]
        rows = turn_rows(firewall, 2)
    assert [a["type"] for a in answered] == ["response.completed"] * 2  # the second is over, let through
    assert [r["decision"] for r in rows] == ["allow", "would_limit"]
    assert socket_upstream.creates() == 2
