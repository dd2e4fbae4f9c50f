"""Reading the token usage an API reports in its answer (docs/budgets.md).

Five answer shapes, chosen by the request's path:

- `chat`: OpenAI chat completions. `usage.prompt_tokens`, `completion_tokens`,
  `prompt_tokens_details.cached_tokens`; streamed, in the last chunk, which
  `stream_options.include_usage` asks for (`ask_for_usage`).
- `responses`: the OpenAI Responses API and the Codex backend
  (`/backend-api/codex/responses`): `usage.input_tokens`, `output_tokens`,
  `input_tokens_details.cached_tokens`; streamed, in the `response.completed`
  (or `.incomplete`, `.failed`) event's `response`.
- `compact`: a compaction (`POST /v1/responses/compact`, and older Codex's
  `/backend-api/codex/responses/compact`): one JSON object (`response.compaction`)
  whose `usage` is the Responses API's. Codex 0.16x compacts with an ordinary
  Responses turn instead (its input ends with a `compaction_trigger` item), counted
  as `responses`.
- `embeddings`: `usage.prompt_tokens`; no output tokens.
- `anthropic`: Anthropic messages. `usage.input_tokens` (not counting cache
  reads), `cache_read_input_tokens`, `cache_creation_input_tokens`,
  `output_tokens`; streamed, `message_start` then `message_delta` (cumulative).

`Usage.input_tokens` always counts every input token, cached ones included, so
the shapes add up alike. Anything else (a missing or negative count, a
count that is not an integer) is unreadable: None.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_COUNT = 2**40  # more tokens than any answer holds: a larger count is not believed


@dataclass(frozen=True)
class Usage:
    input_tokens: int  # every input token, cached ones included
    output_tokens: int
    cached_tokens: int  # the input tokens read from the provider's cache
    model: str | None = None

    def amount(self, measure: str) -> int:
        """Tokens a budget of `measure` counts (not "usd", which needs a price)."""
        if measure == "tokens":
            return self.input_tokens + self.output_tokens
        if measure == "input_tokens":
            return self.input_tokens
        if measure == "output_tokens":
            return self.output_tokens
        if measure == "cached_tokens":
            return self.cached_tokens
        raise ValueError(f"{measure!r} is not a token measure")


def api_of(path: str) -> str | None:
    """The answer shape of a request path, or None for one that reports no usage we know."""
    path = path.split("?", 1)[0].rstrip("/")
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/responses"):
        return "responses"
    if path.endswith("/responses/compact"):
        return "compact"
    if path.endswith("/embeddings"):
        return "embeddings"
    if path.endswith("/messages"):
        return "anthropic"
    return None


READS = frozenset({"GET", "HEAD", "OPTIONS"})
FREE = ("/count_tokens",)  # paths whose answers are free and report no usage (Anthropic's token count)


def billed(method: str, path: str, status: int) -> bool:
    """Whether an answer counts against its request's budgets: a 2xx answer to a request that can
    make the API generate. A read (GET, HEAD, OPTIONS: a model list, a stored response fetched
    again, a WebSocket's upgrade, whose turns count one by one) and a free call (Anthropic's
    `/v1/messages/count_tokens`) generate nothing and count nothing; an error answer is not
    billed. Any other request, on a path whose answer shape is not known, counts as unreadable
    (it may have generated)."""
    if not 200 <= status < 300 or method.upper() in READS:
        return False
    return not path.split("?", 1)[0].rstrip("/").endswith(FREE)


def read_answer(api: str, body: bytes) -> Usage | None:
    """The usage of an answer received whole: a JSON object, or an event stream."""
    head = body.lstrip()[:1]
    if head == b"{":
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return None
        return usage_of_object(api, data)
    from firewall.budgets.stream import StreamCounter  # an event stream received whole

    counter = StreamCounter(api)
    counter.feed(body)
    counter.feed(b"")
    return counter.usage()


def usage_of_object(api: str, data: object) -> Usage | None:
    """The usage of a whole (not streamed) JSON answer."""
    if not isinstance(data, dict):
        return None
    model = _text(data.get("model"))
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    if api == "chat":
        return _usage(
            _count(usage, "prompt_tokens"), _count(usage, "completion_tokens"), _cached(usage, "prompt"), model
        )
    if api in ("responses", "compact"):
        return _usage(_count(usage, "input_tokens"), _count(usage, "output_tokens"), _cached(usage, "input"), model)
    if api == "embeddings":
        return _usage(_count(usage, "prompt_tokens"), 0, 0, model)
    if api == "anthropic":
        return anthropic_usage(usage, model)
    return None


def anthropic_usage(usage: dict[str, object], model: str | None) -> Usage | None:
    fresh, output = _count(usage, "input_tokens"), _count(usage, "output_tokens")
    read = _count(usage, "cache_read_input_tokens", 0)
    written = _count(usage, "cache_creation_input_tokens", 0)
    if fresh is None or read is None or written is None:
        return None
    return _usage(fresh + read + written, output, read, model)


def _usage(inputs: int | None, outputs: int | None, cached: int | None, model: str | None) -> Usage | None:
    if inputs is None or outputs is None or cached is None or cached > inputs:
        return None
    return Usage(inputs, outputs, cached, model)


def _count(data: dict[str, object], key: str, missing: int | None = None) -> int | None:
    value = data.get(key)
    if value is None:
        return missing
    if type(value) is not int or not 0 <= value < MAX_COUNT:
        return None
    return value


def _cached(usage: dict[str, object], prefix: str) -> int | None:
    details = usage.get(f"{prefix}_tokens_details")
    if details is None:
        return 0
    return _count(details, "cached_tokens", 0) if isinstance(details, dict) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


# ---- the request --------------------------------------------------------------


def requested_max_tokens(body: bytes) -> int | None:
    """The most output tokens the request allows (`max_tokens`, `max_completion_tokens`,
    `max_output_tokens`), or None when it names none or its body is not a JSON object."""
    data = _json_object(body)
    if data is None:
        return None
    for key in ("max_completion_tokens", "max_output_tokens", "max_tokens"):
        value = data.get(key)
        if type(value) is int and 0 < value < MAX_COUNT:
            return value
    return None


def requested_model(body: bytes) -> str | None:
    data = _json_object(body)
    return _text(data.get("model")) if data is not None else None


def ask_for_usage(body: bytes) -> bytes | None:
    """A streamed chat completion's body with `stream_options.include_usage` set, or None when it
    need not change (not streamed, or the agent asked already) or cannot be read.

    Without `stream_options` the member is inserted after the opening brace and every other
    byte stays as the agent sent it; an existing `stream_options` is rewritten in a body
    serialised again."""
    data = _json_object(body)
    if data is None or data.get("stream") is not True:
        return None
    options = data.get("stream_options")
    if options is None and "stream_options" not in data:
        brace = body.index(b"{") + 1
        return body[:brace] + b'"stream_options":{"include_usage":true},' + body[brace:]
    if not isinstance(options, dict) or options.get("include_usage") is True:
        return None
    data["stream_options"] = {**options, "include_usage": True}
    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:  # a number JSON cannot write back (1e999): leave the body alone
        return None


def _json_object(body: bytes) -> dict[str, object] | None:
    if body.lstrip()[:1] != b"{":
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
