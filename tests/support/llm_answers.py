"""Answers in each API's format, with known usage, for the budget tests and the stand-in upstream.

Each function returns the body bytes the API would send; streamed ones are event streams
laid out as the provider lays them out (one JSON object per data line).
"""

from __future__ import annotations

import json


def _dump(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _sse(events: list[object], *, named: bool = False, done: bool = False) -> bytes:
    out = b""
    for event in events:
        if named:
            out += b"event: " + str(event["type"]).encode() + b"\n"  # type: ignore[index]
        out += b"data: " + _dump(event) + b"\n\n"
    if done:
        out += b"data: [DONE]\n\n"
    return out


def chat(prompt: int, completion: int, cached: int = 0, model: str = "gpt-4o-mini") -> bytes:
    return _dump(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }
    )


def chat_stream(
    prompt: int, completion: int, cached: int = 0, *, with_usage: bool = True, model: str = "gpt-4o-mini", words=3
) -> bytes:
    """A streamed chat completion; `with_usage` is what `stream_options.include_usage` adds:
    `"usage":null` in every chunk, and a last chunk with empty choices that carries the usage."""
    events: list[object] = []
    for i in range(words):
        chunk: dict[str, object] = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": {"content": f"word{i} "}, "finish_reason": None}],
        }
        if with_usage:
            chunk["usage"] = None
        events.append(chunk)
    if with_usage:
        events.append(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {"cached_tokens": cached},
                },
            }
        )
    return _sse(events, done=True)


def _response(prompt: int, completion: int, cached: int, model: str) -> dict[str, object]:
    return {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "model": model,
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "hi"}]}],
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        },
    }


def responses(prompt: int, completion: int, cached: int = 0, model: str = "gpt-4o-mini") -> bytes:
    return _dump(_response(prompt, completion, cached, model))


def responses_stream(prompt: int, completion: int, cached: int = 0, model: str = "gpt-5-codex", words=3) -> bytes:
    """The Responses API (and the Codex backend) streamed: named events, usage in response.completed."""
    created = {**_response(0, 0, 0, model), "status": "in_progress", "usage": None}
    events: list[object] = [{"type": "response.created", "response": created}]
    events += [{"type": "response.output_text.delta", "delta": f"word{i} "} for i in range(words)]
    events.append({"type": "response.completed", "response": _response(prompt, completion, cached, model)})
    return _sse(events, named=True)


def compaction(prompt: int, completion: int, cached: int = 0, model: str = "gpt-5-codex", *, usage=True) -> bytes:
    """A compaction (`POST /v1/responses/compact`): one `response.compaction` object, its usage the
    Responses API's; without `usage`, only the `output` codex-rs reads (its CompactHistoryResponse)."""
    if not usage:
        return _dump({"output": [{"type": "compaction", "encrypted_content": "gAAAA-compacted"}]})
    answer = _response(prompt, completion, cached, model)
    answer.update(id="cmp_1", object="response.compaction", created_at=1)
    answer["output"] = [{"type": "compaction", "encrypted_content": "gAAAA-compacted"}]
    del answer["status"]
    return _dump(answer)


def embeddings(prompt: int, model: str = "text-embedding-3-small") -> bytes:
    return _dump(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "model": model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }
    )


def anthropic(fresh: int, output: int, read: int = 0, written: int = 0, model: str = "claude-sonnet-4-5") -> bytes:
    return _dump(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "hi"}],
            "usage": {
                "input_tokens": fresh,
                "cache_read_input_tokens": read,
                "cache_creation_input_tokens": written,
                "output_tokens": output,
            },
        }
    )


def anthropic_stream(
    fresh: int, output: int, read: int = 0, written: int = 0, model: str = "claude-sonnet-4-5", words=3
) -> bytes:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "usage": {
                "input_tokens": fresh,
                "cache_read_input_tokens": read,
                "cache_creation_input_tokens": written,
                "output_tokens": 1,
            },
        },
    }
    events: list[object] = [start, {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"word{i} "}}
        for i in range(words)
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": output}},
        {"type": "message_stop"},
    ]
    return _sse(events, named=True)
