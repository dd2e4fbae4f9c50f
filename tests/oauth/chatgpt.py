"""A stand-in for chatgpt.com, ab.chatgpt.com and auth.openai.com, on 127.0.0.1:443.

Only for a private network namespace whose /etc/hosts maps those names to
127.0.0.1 (tests/oauth/codex_netns.py): Codex's built-in ChatGPT provider then
talks to it at the real URLs. One listener serves all three names (they share
the address) and routes by the Host header; its certificate names all three.

- chatgpt.com: the calls a `codex exec` turn needs (the workspace routing
  check, the model list, the Responses API as a WebSocket or a streamed POST),
  each answering 401 unless the bearer is an access token the token endpoint
  issued and ChatGPT-Account-ID is the account. Anything else: 404.
- auth.openai.com: POST /oauth/token, a refresh grant against the `Tokens` book
  (the refresh token rotates; a spent one is `refresh_token_reused`).
- ab.chatgpt.com: 200 to anything (Codex's metrics); the policy should keep it
  from ever being reached.

Every request is recorded, with its host, so a test can see what got through.
"""

from __future__ import annotations

import json
import secrets
import struct
import threading
from dataclasses import dataclass

from tests.oauth.stand_ins import Tokens
from tests.support.logins import ACCOUNT, access_token, id_token
from tests.support.upstream import QuietHandler, https_server, serve, stop_server, ws_accept, ws_frame, ws_read_frame

NAMES = ("chatgpt.com", "ab.chatgpt.com", "auth.openai.com")
ANSWER = "hello from the chatgpt stand-in"
WS_IDLE = 60.0  # a WebSocket with nothing said for this long is closed by the stand-in


@dataclass(frozen=True)
class Hit:
    """One request as the stand-in received it."""

    host: str
    method: str
    path: str
    headers: dict[str, str]
    body: str
    good_token: bool


def accounts_check(account: str) -> dict:
    """GET /backend-api/wham/accounts/check, as codex-rs's backend client reads it (AccountsResponse):
    the selected account must be in `accounts`, with an HTTPS origin and a known routing override."""
    return {
        "accounts": [
            {
                "id": account,
                "plan_type": "plus",
                "workspace_backend_origin": "https://chatgpt.com",
                "account_routing_override": "NO_CONSTRAINT",
                "name": None,
                "structure": "personal",
            }
        ],
        "account_ordering": [account],
        "default_account_id": account,
    }


def response_events(text: str, usage: tuple[int, int, int] = (1, 1, 0)) -> list[dict]:
    """The Responses API events of one short answer, as both the SSE and the WebSocket carry them;
    `usage` is (input tokens, cached ones included; output; cached)."""
    inputs, outputs, cached = usage
    return [
        {"type": "response.created", "response": {"id": "resp_1"}},
        {
            "type": "response.output_item.done",
            "item": {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "content": [{"type": "output_text", "text": text}],
            },
        },
        {
            "type": "response.completed",
            "response": {
                "id": "resp_1",
                "usage": {
                    "input_tokens": inputs,
                    "input_tokens_details": {"cached_tokens": cached} if cached else None,
                    "output_tokens": outputs,
                    "output_tokens_details": None,
                    "total_tokens": inputs + outputs,
                },
            },
        },
    ]


class ChatGPT:
    """The three hosts on one HTTPS listener. `websocket`: accept the Responses WebSocket (else
    answer its upgrade 426, as a server without it would); `usage`: what each response reports."""

    def __init__(
        self,
        pem: str,
        tokens: Tokens,
        *,
        port: int = 443,
        account: str = ACCOUNT,
        websocket: bool = True,
        usage: tuple[int, int, int] = (1, 1, 0),
    ):
        self.tokens = tokens
        self.usage = usage
        self.account = account
        self.websocket = websocket
        self.hits: list[Hit] = []
        self.ws_messages: list[dict] = []  # what Codex sent inside Responses WebSockets
        self.refreshes: list[dict] = []  # bodies of POST auth.openai.com/oauth/token
        self._lock = threading.Lock()
        owner = self

        class Handler(QuietHandler):
            def do_GET(self):
                owner._handle(self)

            do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = do_GET

        self.httpd = https_server(Handler, pem, port=port)
        serve(self.httpd)

    def stop(self) -> None:
        stop_server(self.httpd)

    def _handle(self, request: QuietHandler) -> None:
        body = request._read_body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        host = headers.get("host", "").split(":")[0].lower()
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        with self._lock:
            good = bearer in self.tokens.access and headers.get("chatgpt-account-id") == self.account
            self.hits.append(Hit(host, request.command, request.path, headers, body.decode(errors="replace"), good))
        if host == "auth.openai.com":
            return self._token(request, body)
        if host != "chatgpt.com":
            return request._json(200, {})
        if not good:
            return request._json(
                401, {"error": {"message": "Your authentication token is invalid.", "code": "token_invalid"}}
            )
        path = request.path.split("?")[0]
        upgrade = headers.get("upgrade", "").lower() == "websocket"
        if path == "/backend-api/wham/accounts/check" and request.command == "GET":
            return request._json(200, accounts_check(self.account))
        if path == "/backend-api/codex/responses" and request.command == "GET" and upgrade:
            if not self.websocket:
                return request._json(426, {"error": {"message": "use HTTP", "code": "upgrade_required"}})
            return self._websocket(request)
        if path == "/backend-api/codex/responses" and request.command == "POST":
            return self._sse(request, self.usage)
        if path == "/backend-api/codex/models" and request.command == "GET":
            return request._json(200, {"models": []})  # nothing new: Codex keeps the models it ships with
        request._json(404, {"error": {"message": f"no route {path}", "code": "not_found"}})

    @staticmethod
    def _sse(request: QuietHandler, usage: tuple[int, int, int]) -> None:
        request.send_response(200)
        request.send_header("content-type", "text/event-stream")
        request.send_header("transfer-encoding", "chunked")
        request.end_headers()
        for event in response_events(ANSWER, usage):
            chunk = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
            request.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            request.wfile.flush()
        request.wfile.write(b"0\r\n\r\n")
        request.wfile.flush()

    def _websocket(self, request: QuietHandler) -> None:
        """The Responses API over a WebSocket: each `response.create` message is answered with the
        events of one response, as text messages; the socket stays open for the next one."""
        request.send_response(101)
        request.send_header("upgrade", "websocket")
        request.send_header("connection", "Upgrade")
        request.send_header("sec-websocket-accept", ws_accept(request.headers["sec-websocket-key"]))
        request.end_headers()
        request.wfile.flush()
        request.close_connection = True
        request.connection.settimeout(WS_IDLE)
        try:
            while True:
                opcode, payload = ws_read_frame(request.rfile.read)
                if opcode == 0x8:  # close: answer it and stop
                    request.wfile.write(ws_frame(0x8, payload[:2] or struct.pack("!H", 1000)))
                    request.wfile.flush()
                    return
                if opcode == 0x9:  # ping
                    request.wfile.write(ws_frame(0xA, payload))
                    request.wfile.flush()
                    continue
                if opcode != 0x1:
                    continue
                message = json.loads(payload)
                with self._lock:
                    self.ws_messages.append(message)
                if message.get("type") != "response.create":
                    continue
                for event in response_events(ANSWER, self.usage):
                    request.wfile.write(ws_frame(0x1, json.dumps(event).encode()))
                request.wfile.flush()
        except (OSError, ValueError):
            return  # the client went away, or the socket idled out

    def _token(self, request: QuietHandler, raw: bytes) -> None:
        if request.path != "/oauth/token" or request.command != "POST":
            return request._json(404, {"error": "not_found"})
        body = json.loads(raw or b"{}")
        with self.tokens.lock:
            self.refreshes.append(body)
            if body.get("grant_type") != "refresh_token" or body.get("refresh_token") != self.tokens.refresh:
                return request._json(400, {"error": {"code": "refresh_token_reused", "message": "already used"}})
            access = access_token(3600, self.account)
            self.tokens.access.add(access)
            self.tokens.refresh = "rt-" + secrets.token_hex(16)
            answer = {
                "access_token": access,
                "refresh_token": self.tokens.refresh,
                "id_token": id_token(self.account),
                "expires_in": 3600,
                "token_type": "Bearer",
            }
        request._json(200, answer)
