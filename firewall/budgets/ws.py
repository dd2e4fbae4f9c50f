"""Turns taken over a Responses API WebSocket, read from the socket's messages (docs/budgets.md).

Over a WebSocket (`wss://api.openai.com/v1/responses`, Codex's `/backend-api/codex/responses`)
the client starts each turn with a `response.create` message (older Codex: `response.append`),
whose fields are those of a `POST /v1/responses`; the server answers with the response's
events, one message each, the last of them `response.completed` (or `.incomplete`, `.failed`)
carrying the usage exactly as the streamed Responses API does; or with an `error` event
(`{"type": "error", "status": 429, "error": {...}}`) in place of a response. Messages arrive
here whole: the proxy joins a message's frames before it reads them.

`turn_start` reads a client message, `server_event` a server message; `Turns` keeps the turns
open on one socket, in order, per lane (the `stream_id` a client may give a response).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from firewall.budgets.usage import Usage, usage_of_object

TURN_STARTS = frozenset({"response.create", "response.append"})
TURN_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})
# Only server messages holding one of these are parsed (a delta whose text holds one is parsed,
# found to be a delta, and left): a substring search per message, as for a streamed answer.
_SERVER_MARKS = (b"response.created", b"response.completed", b"response.incomplete", b"response.failed", b'"error"')

Lane = str | None


@dataclass(frozen=True)
class TurnStart:
    lane: Lane  # the response's `stream_id`, None for the socket's one lane


def turn_start(content: bytes) -> TurnStart | None:
    """The turn a client message starts, or None when it starts none (`response.processed`, ...).

    Fail closed: a message that is not a JSON object, has no string `type`, or names a key twice
    (one server's parser may keep the first `type`, another the last) is taken as starting a turn,
    so a spent budget refuses it; a server that cannot take it answers it with an error."""
    duplicated: list[bool] = []

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        found = dict(items)
        if len(found) != len(items):
            duplicated.append(True)
        return found

    try:
        data = json.loads(content, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return TurnStart(None)
    if not isinstance(data, dict) or duplicated or not isinstance(data.get("type"), str):
        return TurnStart(None)
    if data["type"] not in TURN_STARTS:
        return None
    return TurnStart(_lane(data))


@dataclass(frozen=True)
class ServerEvent:
    kind: Literal["created", "ended", "error"]
    lane: Lane
    usage: Usage | None = None  # of an ended turn; None when it could not be read
    end: str = ""  # the ending event's type, or the error's code


def server_event(content: bytes) -> ServerEvent | None:
    """What a server message says of its turn: it began (`response.created`), it ended (with its
    usage), or the server answered it with an error; None for any other message."""
    if not any(mark in content for mark in _SERVER_MARKS):
        return None
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    if kind == "response.created":
        return ServerEvent("created", _lane(data))
    if kind in TURN_ENDS:
        return ServerEvent("ended", _lane(data), usage_of_object("responses", data.get("response")), str(kind))
    if kind == "error":
        error = data.get("error")
        code = (error.get("code") or error.get("type")) if isinstance(error, dict) else None
        return ServerEvent("error", _lane(data), None, str(code or "error"))
    return None


def _lane(data: dict[str, object]) -> Lane:
    lane = data.get("stream_id")
    return lane if isinstance(lane, str) else None


@dataclass
class OpenTurn[T]:
    ticket: T  # what the proxy keeps of the turn: its budgets' hold, its audit row's start
    answered: bool = False  # the server began it (`response.created`)
    received: int = 0  # bytes of server messages while it was the oldest open turn


@dataclass
class Turns[T]:
    """The turns open on one socket, oldest first in each lane.

    The server answers a lane's turns in order: `response.created` begins the oldest turn not yet
    begun; an ending event ends the oldest begun one (the oldest one, if none began); an error ends
    the newest turn not yet begun (the one it refuses), else the oldest."""

    lanes: dict[Lane, list[OpenTurn[T]]] = field(default_factory=dict)

    def open(self, lane: Lane, ticket: T) -> None:
        self.lanes.setdefault(lane, []).append(OpenTurn(ticket))

    def received(self, size: int) -> None:
        """Server bytes, for the audit row: added to the first lane's oldest open turn."""
        for turns in self.lanes.values():
            if turns:
                turns[0].received += size
                return

    def begin(self, lane: Lane) -> None:
        waiting = [turn for turn in self.lanes.get(lane, []) if not turn.answered]
        if waiting:
            waiting[0].answered = True

    def end(self, event: ServerEvent) -> OpenTurn[T] | None:
        """The turn `event` (an ending or an error) ends, taken off the socket; None when none is open."""
        turns = self.lanes.get(event.lane) or []
        if not turns:
            return None
        if event.kind == "error":
            waiting = [turn for turn in turns if not turn.answered]
            chosen = waiting[-1] if waiting else turns[0]
        else:
            begun = [turn for turn in turns if turn.answered]
            chosen = begun[0] if begun else turns[0]
        turns.remove(chosen)
        return chosen

    def close(self) -> list[OpenTurn[T]]:
        """Every turn still open, taken off the socket (it closed)."""
        lanes, self.lanes = self.lanes, {}
        return [turn for turns in lanes.values() for turn in turns]
