"""A local HTTPS stand-in answering like OpenAI, Anthropic and the Codex backend, with known usage.

Each endpoint answers POSTs with the fixed usage below, whole or streamed (chunked, in
pieces cut at odd places) as the request asks; a streamed chat completion carries
the usage chunk only when the request asked for it (`stream_options.include_usage`),
as OpenAI does. A whole answer's path may start with one of `SENT_AS` (`/sent-chunked/v1/...`):
the same JSON is then sent chunked without a length, padded past the size the proxy relays
whole, or gzipped and chunked. A GET is answered with a model list, which reports no usage. Every request
is recorded.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trustme

from tests.support import llm_answers as answers
from tests.support.upstream import QuietHandler, Seen, Upstream, serving_stand_in

CHAT = (100, 20, 40)  # prompt, completion, cached
RESPONSES = (50, 10, 0)
CODEX = (400, 30, 300)
COMPACTION = (9000, 700, 8000)  # a compaction reads the whole conversation and writes a summary
EMBEDDINGS = 30
ANTHROPIC = (10, 20, 5)  # fresh input, output, cache reads (input tokens in all: 15)


def answer_for(path: str, request: dict) -> tuple[bytes, bool]:
    """(body, streamed) for a request."""
    stream = request.get("stream") is True
    if path == "/v1/chat/completions":
        if stream:
            asked = (request.get("stream_options") or {}).get("include_usage") is True
            return answers.chat_stream(*CHAT, with_usage=asked, words=4), True
        return answers.chat(*CHAT), False
    if path == "/v1/responses":
        return (answers.responses_stream if stream else answers.responses)(*RESPONSES, model="gpt-4o-mini"), stream
    if path == "/backend-api/codex/responses":
        return answers.responses_stream(*CODEX, model="gpt-5-codex"), True
    if path in ("/v1/responses/compact", "/backend-api/codex/responses/compact"):
        return answers.compaction(*COMPACTION, model=str(request.get("model") or "gpt-5-codex")), False
    if path == "/v1/no-usage/responses/compact":
        return answers.compaction(0, 0, usage=False), False
    if path == "/v1/embeddings":
        return answers.embeddings(EMBEDDINGS), False
    if path == "/v1/messages":
        fresh, output, read = ANTHROPIC
        return (answers.anthropic_stream if stream else answers.anthropic)(fresh, output, read=read), stream
    if path == "/v1/no-usage/chat/completions":
        return b'{"id": "x", "choices": []}', False
    return b'{"ok": true}', False


SENT_AS = ("/sent-chunked", "/sent-large", "/sent-gzip-chunked")


def _sent_as(path: str) -> tuple[str, str]:
    """(how the answer is sent, the API path) for a path that may carry a SENT_AS prefix."""
    for prefix in SENT_AS:
        if path.startswith(prefix + "/"):
            return prefix, path[len(prefix) :]
    return "", path


def _padded(data: bytes) -> bytes:
    """The same answer past 64 KiB, as a large embeddings batch is: a long vector in each item."""
    answer = json.loads(data)
    answer.setdefault("data", []).append({"object": "embedding", "index": 1, "embedding": [0.123456] * 20_000})
    return json.dumps(answer).encode()


class LLMUpstream(Upstream):
    pass


def _handler(ref: list[LLMUpstream]):
    class Handler(QuietHandler):
        def do_GET(self) -> None:  # a read (the model list, a stored response): no usage
            ref[0].seen.append(Seen("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, b""))
            self._json(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})

        def do_POST(self) -> None:
            body = self._read_body()
            ref[0].seen.append(Seen("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                request = {}
            if self.path == "/v1/error/chat/completions":
                self._json(500, {"error": {"message": "upstream broke"}})
                return
            sent_as, path = _sent_as(self.path)
            data, streamed = answer_for(path, request if isinstance(request, dict) else {})
            self.send_response(200)
            if sent_as and not streamed:
                self.send_header("content-type", "application/json")
                if sent_as == "/sent-large":
                    data = _padded(data)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if sent_as == "/sent-gzip-chunked":
                    data = gzip.compress(data)
                    self.send_header("content-encoding", "gzip")
                self._chunked(data)
                return
            if not streamed:
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_header("content-type", "text/event-stream")
            self._chunked(data)

        def _chunked(self, data: bytes) -> None:
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for start in range(0, len(data), 97):  # pieces that cut lines and events anywhere
                piece = data[start : start + 97]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

    return Handler


@contextmanager
def serving_llm_upstream(ca: trustme.CA, directory: Path) -> Iterator[LLMUpstream]:
    with serving_stand_in(ca, directory / "llm-upstream.pem", _handler, LLMUpstream) as upstream:
        yield upstream
