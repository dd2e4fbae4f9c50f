"""Reading turns out of a Responses API WebSocket's messages (firewall/budgets/ws.py)."""

from __future__ import annotations

import json

import pytest

from firewall.budgets.usage import Usage
from firewall.budgets.ws import ServerEvent, Turns, TurnStart, server_event, turn_start


def dumps(data: object) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (dumps({"type": "response.create", "model": "gpt-5", "input": []}), TurnStart(None)),
        (dumps({"type": "response.create", "stream_id": "lane-2"}), TurnStart("lane-2")),
        (dumps({"type": "response.append", "input": []}), TurnStart(None)),  # older Codex
        # Benign controls of the same shape: messages that start no turn.
        (dumps({"type": "response.processed", "response_id": "resp_1"}), None),
        (dumps({"type": "response.steer", "input": [{"type": "response.create"}]}), None),
        # Fail closed: whatever the server might read as a turn the proxy cannot tell from one.
        (b'{"type": "response.processed", "type": "response.create"}', TurnStart(None)),
        (b'{"type": "response.create", "type": "response.processed"}', TurnStart(None)),
        (b'{"type": "response.create", "input": [{"a": 1, "a": 2}]}', TurnStart(None)),
        (b"not json", TurnStart(None)),
        (b'["response.create"]', TurnStart(None)),
        (dumps({"model": "gpt-5"}), TurnStart(None)),
        (dumps({"type": None}), TurnStart(None)),
        (b'{"type": "response\\u002ecreate"}', TurnStart(None)),  # an escape: read as the server reads it
        (b"\xff\xfe", TurnStart(None)),
        (b"[" * 100_000, TurnStart(None)),
    ],
)
def test_which_client_messages_start_a_turn(message, expected):
    assert turn_start(message) == expected


def completed(usage: dict | None, **extra) -> bytes:
    response = {"id": "resp_1", "model": "gpt-5-codex"}
    if usage is not None:
        response["usage"] = usage
    return dumps({"type": "response.completed", "response": response, **extra})


USAGE = {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1000}, "output_tokens": 34}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (dumps({"type": "response.created", "response": {"id": "r"}}), ServerEvent("created", None)),
        (completed(USAGE), ServerEvent("ended", None, Usage(1200, 34, 1000, "gpt-5-codex"), "response.completed")),
        (
            completed(USAGE, stream_id="b"),
            ServerEvent("ended", "b", Usage(1200, 34, 1000, "gpt-5-codex"), "response.completed"),
        ),
        (
            dumps({"type": "response.incomplete", "response": {"usage": USAGE}}),
            ServerEvent("ended", None, Usage(1200, 34, 1000), "response.incomplete"),
        ),
        (
            dumps({"type": "response.failed", "response": {"error": {"code": "x"}}}),
            ServerEvent("ended", None, None, "response.failed"),
        ),
        (completed(None), ServerEvent("ended", None, None, "response.completed")),  # unreadable
        (completed({"input_tokens": -1, "output_tokens": 3}), ServerEvent("ended", None, None, "response.completed")),
        (
            dumps({"type": "error", "status": 429, "error": {"type": "usage_limit_reached"}}),
            ServerEvent("error", None, None, "usage_limit_reached"),
        ),
        (
            dumps({"type": "error", "error": {"code": "websocket_connection_limit_reached", "type": "x"}}),
            ServerEvent("error", None, None, "websocket_connection_limit_reached"),
        ),
        # Benign controls: every other message, even one whose text names an event or an error.
        (dumps({"type": "response.output_text.delta", "delta": "response.completed with an error"}), None),
        (dumps({"type": "codex.rate_limits", "usage": {"input_tokens": 5}}), None),
        (b"not json error", None),
        (dumps(["response.completed"]), None),
    ],
)
def test_what_server_messages_say_of_their_turn(message, expected):
    assert server_event(message) == expected


CREATED, ENDED = ServerEvent("created", None), ServerEvent("ended", None)


def test_turns_end_in_order_and_an_error_ends_the_turn_it_refused():
    turns: Turns[str] = Turns()
    turns.open(None, "first")
    turns.begin(None)
    turns.open(None, "second")  # sent before the first ended: the server refuses it
    turns.received(10)
    refused = turns.end(ServerEvent("error", None))
    assert refused is not None and (refused.ticket, refused.answered) == ("second", False)
    ended = turns.end(ENDED)
    assert ended is not None and (ended.ticket, ended.answered, ended.received) == ("first", True, 10)
    assert turns.end(ENDED) is None  # nothing open: an ending of nothing is ignored


def test_an_error_after_the_only_turn_began_ends_it():
    turns: Turns[str] = Turns()
    turns.open(None, "only")
    turns.begin(None)
    ended = turns.end(ServerEvent("error", None))
    assert ended is not None and (ended.ticket, ended.answered) == ("only", True)


def test_lanes_are_kept_apart_and_closing_hands_back_what_is_open():
    turns: Turns[str] = Turns()
    turns.open("a", "a1")
    turns.open("b", "b1")
    turns.begin("b")
    ended = turns.end(ServerEvent("ended", "a"))
    assert ended is not None and ended.ticket == "a1" and not ended.answered
    assert [(t.ticket, t.answered) for t in turns.close()] == [("b1", True)]
    assert turns.close() == []
