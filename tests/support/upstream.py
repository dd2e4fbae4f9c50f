"""A local HTTPS stand-in for an API (OpenAI-shaped), for end-to-end tests.

Runs in a thread on 127.0.0.1 with a certificate from a test CA (trustme).
Every request is recorded (method, path, headers, body) so tests can check
what really reached the upstream. Endpoints:
  GET  /v1/models                -> a model list
  POST /v1/chat/completions      -> a completion (stream=true: SSE, chunks spaced in time)
  GET  /sse?n=N&gap=S            -> N server-sent events, S seconds apart
  GET  /ws... (Upgrade: websocket) -> WebSocket handshake, then echoes one text frame and closes
  ANY  /echo...                  -> echoes the request (headers and body) as JSON
  anything else                  -> 200 {"ok": true, "path": ...}
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    import trustme

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key: str) -> str:
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455, 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final WebSocket frame; masked when `mask` (4 bytes) is given, as clients must."""
    head = bytes([0x80 | opcode])
    mask_bit = 0x80 if mask else 0
    if len(payload) < 126:
        head += bytes([mask_bit | len(payload)])
    elif len(payload) < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", len(payload))
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def ws_read_frame(read) -> tuple[int, bytes]:
    """(opcode, payload) of the next frame; `read(n)` returns exactly n bytes."""
    first, second = read(2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", read(8))[0]
    mask = read(4) if second & 0x80 else None
    payload = read(length)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return first & 0x0F, payload


@dataclass
class Seen:
    """One request as an upstream received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    reused: bool | None = None  # whether the TLS connection it came on resumed a session


def https_server(
    handler: type[BaseHTTPRequestHandler], cert_pem: str, key_pem: str | None = None, port: int = 0
) -> ThreadingHTTPServer:
    """A threaded HTTPS server on 127.0.0.1 (`cert_pem` may hold the key too); `serve` starts it."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_pem, key_pem)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def serve(server: ThreadingHTTPServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


@contextmanager
def serving_stand_in[U: "Upstream"](ca: trustme.CA, pem: Path, make_handler: Callable, kind: type[U]) -> Iterator[U]:
    """A stand-in upstream of class `kind` on a certificate for localhost and 127.0.0.1 from `ca`
    (written to `pem`); `make_handler(ref)` builds its handler class, which finds the upstream
    it records into in `ref` once it is made. Stopped on the way out."""
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    ref: list[U] = []
    server = https_server(make_handler(ref), str(pem), str(pem))
    upstream = kind(server.server_address[1], server)
    ref.append(upstream)
    serve(server)
    try:
        yield upstream
    finally:
        upstream.stop()


def stop_server(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no log lines, and the small helpers every stand-in uses."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle on, the body waits for the
    # peer's delayed ACK and every response takes 40 ms longer.
    disable_nagle_algorithm = True

    def log_message(self, *args):  # keep test output clean
        pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _json(self, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@dataclass
class Upstream:
    port: int
    server: ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.port}"

    def stop(self) -> None:
        stop_server(self.server)


def _handler(upstream_ref: list[Upstream]):
    class Handler(QuietHandler):
        def _record(self, body: bytes) -> None:
            upstream_ref[0].seen.append(
                Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    getattr(self.connection, "session_reused", None),
                )
            )

        def _sse(self, events: list[str], gap: float) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for event in events:
                chunk = f"data: {event}\n\n".encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                time.sleep(gap)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _websocket(self) -> None:
            self.send_response(101)
            self.send_header("upgrade", "websocket")
            self.send_header("connection", "Upgrade")
            self.send_header("sec-websocket-accept", ws_accept(self.headers["sec-websocket-key"]))
            self.end_headers()
            self.wfile.flush()
            _, payload = ws_read_frame(self.rfile.read)
            self.wfile.write(ws_frame(0x1, b"echo: " + payload))
            self.wfile.write(ws_frame(0x8, struct.pack("!H", 1000)))
            self.wfile.flush()
            self.close_connection = True

        def _handle(self) -> None:
            body = self._read_body()
            self._record(body)
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if parts.path.startswith("/ws") and self.headers.get("upgrade", "").lower() == "websocket":
                self._websocket()
            elif parts.path == "/v1/models":
                self._json(
                    200,
                    {
                        "object": "list",
                        "data": [{"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "test"}],
                    },
                )
            elif parts.path == "/v1/chat/completions":
                request = json.loads(body or b"{}")
                if request.get("stream"):
                    events = [
                        json.dumps(
                            {
                                "id": "c1",
                                "object": "chat.completion.chunk",
                                "created": 0,
                                "model": request.get("model", "x"),
                                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
                            }
                        )
                        for word in ("hello", " from", " upstream")
                    ]
                    self._sse(events + ["[DONE]"], float(query.get("gap", ["0.2"])[0]))
                else:
                    self._json(
                        200,
                        {
                            "id": "c1",
                            "object": "chat.completion",
                            "created": 0,
                            "model": request.get("model", "x"),
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": "hello"},
                                }
                            ],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                        },
                    )
            elif parts.path == "/slow":  # an upstream that takes its time (tests/faults/test_clean_stop.py)
                time.sleep(float(query.get("delay", ["3"])[0]))
                self._json(200, {"ok": True, "path": self.path})
            elif parts.path == "/sse":
                n = int(query.get("n", ["3"])[0])
                self._sse([f"event {i}" for i in range(n)], float(query.get("gap", ["0.3"])[0]))
            elif parts.path.startswith("/echo"):
                self._json(
                    200,
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body.decode(errors="replace"),
                    },
                )
            else:
                self._json(200, {"ok": True, "path": self.path})

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    return Handler


def start_upstream(cert_pem: str, key_pem: str, port: int = 0) -> Upstream:
    """An HTTPS server on 127.0.0.1 using the given certificate (chain) and key files."""
    ref: list[Upstream] = []
    server = https_server(_handler(ref), cert_pem, key_pem, port)
    upstream = Upstream(server.server_address[1], server)
    ref.append(upstream)
    serve(server)
    return upstream


if __name__ == "__main__":  # manual use: python -m tests.support.upstream CERT KEY PORT
    import sys

    up = start_upstream(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    print(f"listening on {up.base_url}", flush=True)
    threading.Event().wait()
