"""Local HTTPS stand-ins for an OAuth token endpoint and the ChatGPT Codex backend.

Both run in threads on 127.0.0.1 with certificates from the test CA. They share
one `Tokens` book: the token server issues access tokens into it and rotates
the refresh token (spending an old one answers `refresh_token_reused`, as
OpenAI's does); the backend accepts only access tokens in it.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field

from tests.support.logins import ACCOUNT, access_token, id_token
from tests.support.upstream import QuietHandler, Seen, https_server, serve, stop_server

MAX_HANG = 30.0  # a hanging token endpoint gives up by itself after this long


@dataclass
class Tokens:
    """Which tokens are good right now."""

    refresh: str = ""  # the one refresh token the server accepts
    access: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class TokenCall:
    body: dict
    content_type: str


class _Server:
    def __init__(self, handler, pem: str):
        self.httpd = https_server(handler, pem)
        self.port = self.httpd.server_address[1]
        serve(self.httpd)

    def stop(self) -> None:
        stop_server(self.httpd)


class TokenServer:
    """POST /oauth/token. `mode`: "ok", "fail" (503), "dead" (400 with `dead_code`), "unauthorized" (401),
    "hang" (no answer until `release()`). `failures` > 0 answers 503 that many times first."""

    def __init__(self, pem: str, tokens: Tokens):
        self.tokens = tokens
        self.calls: list[TokenCall] = []
        self.mode = "ok"
        self.dead_code = "refresh_token_reused"
        self.failures = 0
        self.delay = 0.0
        self.lifetime = 3600.0
        self.hanging = threading.Event()  # set while a call hangs
        self._release = threading.Event()
        owner = self

        class Handler(QuietHandler):
            def do_POST(self):
                owner._handle(self)

        self.server = _Server(Handler, pem)
        self.url = f"https://localhost:{self.server.port}/oauth/token"

    def release(self) -> None:
        self.mode = "fail"
        self._release.set()

    def stop(self) -> None:
        self._release.set()
        self.server.stop()

    def _handle(self, request: QuietHandler) -> None:
        raw = request._read_body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"unreadable": raw.decode(errors="replace")}
        with self.tokens.lock:
            self.calls.append(TokenCall(body, request.headers.get("content-type", "")))
        if request.path != "/oauth/token":
            return request._json(404, {"error": "not_found"})
        if self.mode == "hang":
            self.hanging.set()
            self._release.wait(MAX_HANG)
        time.sleep(self.delay)
        if self.failures > 0:
            self.failures -= 1
            return request._json(503, {"error": "temporarily_unavailable"})
        if self.mode == "fail":
            return request._json(503, {"error": "temporarily_unavailable"})
        if self.mode == "unauthorized":
            return request._json(401, {"error": {"message": "unauthorized"}})
        if self.mode == "dead":
            return request._json(400, {"error": {"code": self.dead_code, "message": "log in again"}})
        with self.tokens.lock:
            if body.get("grant_type") != "refresh_token" or body.get("refresh_token") != self.tokens.refresh:
                return request._json(400, {"error": {"code": "refresh_token_reused", "message": "already used"}})
            access = access_token(self.lifetime)
            self.tokens.access.add(access)
            self.tokens.refresh = "rt-" + secrets.token_hex(16)
            answer = {
                "access_token": access,
                "refresh_token": self.tokens.refresh,
                "id_token": id_token(),
                "expires_in": int(self.lifetime),
                "token_type": "Bearer",
            }
        request._json(200, answer)


class CodexBackend:
    """The ChatGPT Codex backend: GET /backend-api/codex/models, POST /backend-api/codex/responses (SSE),
    each answering 401 unless the bearer is a good access token and ChatGPT-Account-ID the account."""

    def __init__(self, pem: str, tokens: Tokens, account: str = ACCOUNT):
        self.tokens = tokens
        self.account = account
        self.refuse_all = False  # a backend that takes no token at all
        self.seen: list[Seen] = []
        owner = self

        class Handler(QuietHandler):
            def do_GET(self):
                owner._handle(self)

            do_POST = do_GET

        self.server = _Server(Handler, pem)
        self.base_url = f"https://localhost:{self.server.port}"

    def stop(self) -> None:
        self.server.stop()

    def bearers(self) -> list[str]:
        return [s.headers.get("authorization", "").removeprefix("Bearer ") for s in self.seen]

    def _handle(self, request: QuietHandler) -> None:
        body = request._read_body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self.tokens.lock:
            self.seen.append(Seen(request.command, request.path, headers, body))
            good = headers.get("authorization", "").removeprefix("Bearer ") in self.tokens.access
            good = good and not self.refuse_all
        if not good or headers.get("chatgpt-account-id") != self.account:
            return request._json(
                401, {"error": {"message": "Your authentication token is invalid.", "code": "token_invalid"}}
            )
        path = request.path.split("?")[0]
        if path == "/backend-api/codex/models":
            return request._json(200, {"models": [{"slug": "gpt-5-codex"}]})
        if path == "/backend-api/codex/responses" and request.command == "POST":
            return self._stream(request, json.loads(body or b"{}"))
        request._json(404, {"error": {"message": f"no route {path}"}})

    @staticmethod
    def _stream(request: QuietHandler, ask: dict) -> None:
        events = [
            {"type": "response.created", "response": {"id": "resp_1"}},
            {
                "type": "response.output_item.done",
                "item": {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_1",
                    "content": [{"type": "output_text", "text": "hello from the stand-in"}],
                },
            },
            {
                "type": "response.completed",
                "response": {
                    "id": "resp_1",
                    "usage": {
                        "input_tokens": 1,
                        "input_tokens_details": None,
                        "output_tokens": 1,
                        "output_tokens_details": None,
                        "total_tokens": 2,
                    },
                },
            },
        ]
        request.send_response(200)
        request.send_header("content-type", "text/event-stream")
        request.send_header("transfer-encoding", "chunked")
        request.end_headers()
        for event in events:
            chunk = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
            request.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            request.wfile.flush()
        request.wfile.write(b"0\r\n\r\n")
        request.wfile.flush()
