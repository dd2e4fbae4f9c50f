"""A local stand-in for the Responses API over a WebSocket (`wss://…/v1/responses`), with known usage.

Each `response.create` message is answered with the events of one response, one text
message each, as OpenAI sends them on a socket: `response.created`, a text delta,
`response.completed` with the usage below. The socket stays open for the next turn.
The message's `metadata.stand_in` picks another answer for that turn:

- `fragmented`: the `response.completed` message in three frames (a text frame and two
  continuations), written to the socket in pieces cut at odd places;
- `no_usage`: `response.completed` without `usage`;
- `error`: an `error` event in place of a response (`status` 400), as the server refuses a turn;
- `silent`: `response.created`, then nothing (the turn is never ended).

A turn whose `input` ends with a `compaction_trigger` item (how Codex 0.16x compacts a
conversation: remote compaction v2) is answered as the Responses backend answers it: one
`compaction` output item, then `response.completed` with `COMPACTION_USAGE`.

`response.processed` is taken silently; any other message is answered with an `error` event
(`invalid_event`). `/v1/realtime` is served the same way: a socket on a path the proxy does not
read. Every client message is recorded (`messages`), and every server message sent (`sent`).
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trustme

from tests.support.upstream import QuietHandler, Upstream, serving_stand_in, ws_accept, ws_read_frame

USAGE = (1200, 34, 1000)  # input (cached included), output, cached
COMPACTION_USAGE = (15000, 900, 12000)  # a compaction reads the whole conversation and writes a summary
MODEL = "gpt-4o-mini"
WS_IDLE = 30.0  # seconds a socket with nothing said stays open
# The Responses API's socket, and one the proxy does not read (the Realtime API's path), served alike.
SOCKET_PATHS = ("/v1/responses", "/v1/realtime")


def response_events(number: int, mode: str, lane: str | None) -> list[dict]:
    """The server's messages for one turn."""
    rid = f"resp_{number}"
    extra = {"stream_id": lane} if lane else {}
    if mode == "error":
        error = {"type": "invalid_request_error", "code": "stand_in_refused", "message": "refused by the stand-in"}
        return [{"type": "error", "status": 400, "error": error, **extra}]
    created = {"type": "response.created", "response": {"id": rid, "model": MODEL, "status": "in_progress"}, **extra}
    if mode == "silent":
        return [created]
    inputs, outputs, cached = COMPACTION_USAGE if mode == "compaction" else USAGE
    usage = {
        "input_tokens": inputs,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": outputs,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": inputs + outputs,
    }
    response: dict = {"id": rid, "model": MODEL, "status": "completed", "output": []}
    if mode != "no_usage":
        response["usage"] = usage
    delta = {"type": "response.output_text.delta", "delta": "an error-free answer", "item_id": "msg_1", **extra}
    if mode == "compaction":
        item = {"type": "compaction", "id": "cmp_1", "encrypted_content": "gAAAA-compacted"}
        delta = {"type": "response.output_item.done", "output_index": 0, "item": item, **extra}
        response["output"] = [item]
    return [created, delta, {"type": "response.completed", "response": response, **extra}]


def compacts(message: dict) -> bool:
    """Whether a `response.create` asks for a compaction: its input ends with a `compaction_trigger`."""
    items = message.get("input")
    return (
        isinstance(items, list)
        and bool(items)
        and isinstance(items[-1], dict)
        and (items[-1].get("type") == "compaction_trigger")
    )


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One unmasked server frame; `opcode` 0 for a continuation."""
    head = bytes([(0x80 if fin else 0) | opcode])
    if len(payload) < 126:
        head += bytes([len(payload)])
    elif len(payload) < 1 << 16:
        head += bytes([126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([127]) + struct.pack("!Q", len(payload))
    return head + payload


class ResponsesSocket(Upstream):
    def __init__(self, port: int, server) -> None:
        super().__init__(port, server)
        self.messages: list[dict | str] = []  # what clients sent, parsed when JSON
        self.sent: list[bytes] = []  # every server message, as sent
        self.lock = threading.Lock()

    def creates(self) -> int:
        return sum(1 for m in self.messages if isinstance(m, dict) and m.get("type") == "response.create")


def _handler(ref: list[ResponsesSocket]):
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            if self.headers.get("upgrade", "").lower() != "websocket" or self.path.split("?")[0] not in SOCKET_PATHS:
                self._json(404, {"error": {"message": "not here"}})
                return
            self.send_response(101)
            self.send_header("upgrade", "websocket")
            self.send_header("connection", "Upgrade")
            self.send_header("sec-websocket-accept", ws_accept(self.headers["sec-websocket-key"]))
            self.end_headers()
            self.wfile.flush()
            self.close_connection = True
            self.connection.settimeout(WS_IDLE)
            try:
                self._turns(ref[0])
            except (OSError, ValueError):
                return  # the client went away, or the socket idled out

        def _turns(self, socket: ResponsesSocket) -> None:
            number = 0
            while True:
                opcode, payload = ws_read_frame(self.rfile.read)
                if opcode == 0x8:
                    self.wfile.write(frame(0x8, payload[:2] or struct.pack("!H", 1000)))
                    self.wfile.flush()
                    return
                if opcode == 0x9:
                    self.wfile.write(frame(0xA, payload))
                    self.wfile.flush()
                    continue
                try:
                    message = json.loads(payload)
                except ValueError:
                    message = payload.decode(errors="replace")
                with socket.lock:
                    socket.messages.append(message)
                kind = message.get("type") if isinstance(message, dict) else None
                if kind == "response.processed":  # Codex's acknowledgement: nothing to answer
                    continue
                if kind != "response.create":  # as OpenAI answers a client event it cannot take
                    error = {"type": "invalid_request_error", "code": "invalid_event", "message": "unknown event"}
                    data = json.dumps({"type": "error", "status": 400, "error": error}).encode()
                    with socket.lock:
                        socket.sent.append(data)
                    self.wfile.write(frame(0x1, data))
                    self.wfile.flush()
                    continue
                number += 1
                mode = "compaction" if compacts(message) else str((message.get("metadata") or {}).get("stand_in", ""))
                lane = message.get("stream_id") if isinstance(message.get("stream_id"), str) else None
                for event in response_events(number, mode, lane):
                    data = json.dumps(event).encode()
                    with socket.lock:
                        socket.sent.append(data)
                    if mode == "fragmented" and event["type"] == "response.completed":
                        cut = (len(data) // 3, 2 * len(data) // 3)
                        wire = frame(0x1, data[: cut[0]], fin=False)
                        wire += frame(0x0, data[cut[0] : cut[1]], fin=False) + frame(0x0, data[cut[1] :])
                        for start in range(0, len(wire), 7):  # the frames' bytes, cut anywhere
                            self.wfile.write(wire[start : start + 7])
                            self.wfile.flush()
                    else:
                        self.wfile.write(frame(0x1, data))
                self.wfile.flush()

    return Handler


@contextmanager
def serving_responses_socket(ca: trustme.CA, directory: Path) -> Iterator[ResponsesSocket]:
    with serving_stand_in(ca, directory / "responses-ws.pem", _handler, ResponsesSocket) as upstream:
        yield upstream
