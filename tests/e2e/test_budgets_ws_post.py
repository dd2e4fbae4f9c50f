"""A Responses API WebSocket's turns count as POSTs of them would: a budget (or request limit)
narrowed to `POST /v1/responses` is not escaped by switching from HTTP to the socket, whose
upgrade is a GET (docs/budgets.md, "WebSockets"). And what a request limit means on a socket
the proxy does not read: the connection. A real proxy, the `websockets` client, the stand-in of
tests/support/responses_ws.py.
"""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.test_budgets_ws import PER_TURN, agent_socket, budget_use, last, turn, turn_rows
from tests.support.fixtures import running_proxy
from tests.support.responses_ws import USAGE, serving_responses_socket

POST_BUDGET = "limit 1000 tokens per day per agent POST /v1/responses"  # less than one turn: spent by it


@pytest.fixture
def socket_upstream(test_ca, tmp_path):
    with serving_responses_socket(test_ca, tmp_path) as upstream:
        yield upstream


def block(port: int, *lines: str) -> str:
    return f"host localhost:{port} {{\n" + "".join(f"    {line}\n" for line in lines) + "}\n"


def test_a_budget_narrowed_to_post_counts_the_sockets_turns(firewall, socket_upstream, upstream_ca_file):
    """The socket's GET is let through by a rule of its own, which the budget does not cover: its
    turns still count against the budget a POST of them would, and the spent budget refuses the next."""
    port = socket_upstream.port
    firewall.apply(block(port, POST_BUDGET, "allow GET /v1/responses", "allow POST /v1/responses"))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port) as socket:
            first = last(turn(socket))
            refused = last(turn(socket))
        used = budget_use(firewall, POST_BUDGET, PER_TURN)  # the counter a POST counts in
        rows = turn_rows(firewall, 2)
    assert first["type"] == "response.completed"
    assert (refused["type"], refused["error"]["code"]) == ("error", "budget_exhausted")
    assert socket_upstream.creates() == 1  # the second turn never went upstream
    assert used == PER_TURN
    assert [(r["decision"], r["reason"], r["rule"]) for r in rows] == [
        ("allow", "rule", "test.policy:3"),  # the upgrade's rule
        ("limit", "budget_exhausted", "test.policy:2"),
    ]
    assert (rows[0]["input_tokens"], rows[0]["output_tokens"]) == USAGE[:2]


def test_a_budget_on_another_path_does_not_count_the_sockets_turns(firewall, socket_upstream, upstream_ca_file):
    """Control: a budget a POST of the turn would not count against leaves the turns alone."""
    port = socket_upstream.port
    budget = "limit 1000 tokens per day per agent POST /v1/chat/completions"
    firewall.apply(block(port, budget, "allow GET /v1/responses", "allow POST /v1/responses"))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port) as socket:
            answered = [last(turn(socket))["type"] for _ in range(3)]
    assert answered == ["response.completed"] * 3
    assert socket_upstream.creates() == 3


def test_a_conditional_budget_counts_the_turns_its_condition_holds_for(firewall, socket_upstream, upstream_ca_file):
    """Each turn is decided as a POST with its own message as the body: a budget on one model counts
    that model's turns only (control: a turn for another model goes through after it is spent)."""
    port = socket_upstream.port
    budget = 'limit 1000 tokens per day per agent POST /v1/responses when json.model == "gpt-4o-mini"'
    firewall.apply(block(port, budget, "allow GET /v1/responses", "allow POST /v1/responses"))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port) as socket:
            counted = last(turn(socket))  # gpt-4o-mini: spends the budget
            other = last(turn(socket, model="gpt-other"))  # not under the budget
            refused = last(turn(socket))
    assert (counted["type"], other["type"]) == ("response.completed", "response.completed")
    assert refused["error"]["code"] == "budget_exhausted"
    assert socket_upstream.creates() == 2


def test_a_socket_upgrade_refused_where_only_post_is_allowed(firewall, socket_upstream, upstream_ca_file):
    """Where no rule lets the GET through, there is no socket to switch to: 426, and the agent's
    fallback is the POST, counted as any (docs/budgets.md)."""
    port = socket_upstream.port
    firewall.apply(block(port, POST_BUDGET, "allow POST /v1/responses"))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with pytest.raises(InvalidStatus) as refused:
            with agent_socket(firewall, proxy.port, port):
                pass
    assert refused.value.response.status_code == 426
    assert socket_upstream.creates() == 0


# ---- a request limit on a socket the proxy does not read: it counts the connection


def _talk(socket, messages: int) -> list[str]:
    """Send `messages` client events the stand-in does not take; the error event each is answered with."""
    answers = []
    for number in range(messages):
        socket.send(json.dumps({"type": "session.update", "number": number}))
        answers.append(json.loads(socket.recv(timeout=15))["error"]["code"])
    return answers


@pytest.mark.parametrize("allowed", [2, 10])
def test_a_request_limit_counts_a_socket_it_cannot_read_once(firewall, socket_upstream, upstream_ca_file, allowed):
    """`limit 2 per minute per agent` on a socket whose messages the proxy does not read (not a
    Responses path) counts its upgrade, the connection, once: five messages on it all pass, a
    second socket opens, a third is refused 429. Control: ten a minute, the third opens too."""
    port = socket_upstream.port
    firewall.apply(block(port, f"limit {allowed} per minute per agent", "allow GET /v1/realtime"))
    with running_proxy(firewall, upstream_ca_file) as proxy:
        with agent_socket(firewall, proxy.port, port, path="/v1/realtime") as socket:
            answers = _talk(socket, 5)
        with agent_socket(firewall, proxy.port, port, path="/v1/realtime") as second:
            assert _talk(second, 1) == ["invalid_event"]
        if allowed > 2:
            with agent_socket(firewall, proxy.port, port, path="/v1/realtime") as third:
                assert _talk(third, 1) == ["invalid_event"]
        else:
            with pytest.raises(InvalidStatus) as refused:
                with agent_socket(firewall, proxy.port, port, path="/v1/realtime"):
                    pass
            rows = firewall.audit_rows_once(lambda rows: len(rows) >= 3)
    assert answers == ["invalid_event"] * 5  # every message reached the server and was answered
    sent = [m for m in socket_upstream.messages if isinstance(m, dict) and m.get("type") == "session.update"]
    assert len(sent) == (6 if allowed == 2 else 7)
    if allowed == 2:
        assert refused.value.response.status_code == 429
        assert int(refused.value.response.headers["retry-after"]) > 0
        assert [(r["decision"], r["reason"]) for r in rows] == [("allow", "rule")] * 2 + [("limit", "rate_limited")]
