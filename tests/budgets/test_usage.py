"""Reading usage from each API's answers, whole and streamed, in any chunking."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firewall.budgets.prices import PRICES_TAKEN, SHIPPED, Price, cost_micros, price_of
from firewall.budgets.stream import StreamCounter
from firewall.budgets.usage import Usage, api_of, ask_for_usage, billed, read_answer, requested_max_tokens
from firewall.budgets.windows import window, window_id
from tests.support import llm_answers as answers

CASES = [
    ("chat", answers.chat(120, 30, 100), Usage(120, 30, 100, "gpt-4o-mini")),
    ("chat", answers.chat_stream(120, 30, 100), Usage(120, 30, 100, "gpt-4o-mini")),
    ("responses", answers.responses(50, 7, 20), Usage(50, 7, 20, "gpt-4o-mini")),
    ("responses", answers.responses_stream(50, 7, 20), Usage(50, 7, 20, "gpt-5-codex")),
    ("embeddings", answers.embeddings(42), Usage(42, 0, 0, "text-embedding-3-small")),
    # Anthropic input_tokens leave out cache reads and writes; Usage counts every input token.
    ("anthropic", answers.anthropic(10, 99, read=500, written=40), Usage(550, 99, 500, "claude-sonnet-4-5")),
    ("anthropic", answers.anthropic_stream(10, 99, read=500, written=40), Usage(550, 99, 500, "claude-sonnet-4-5")),
]


@pytest.mark.parametrize(("api", "body", "expected"), CASES)
def test_each_format_whole(api, body, expected):
    assert read_answer(api, body) == expected


@pytest.mark.parametrize(("api", "body", "expected"), CASES)
@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
def test_each_format_in_any_chunking_passes_unchanged(api, body, expected, cuts):
    counter = StreamCounter(api)
    out = b"".join(counter.feed(piece) for piece in _split(body, cuts))
    out += counter.feed(b"")
    assert out == body  # counting never changes a byte
    if body.startswith(b"{"):
        return  # a whole JSON answer is read by read_answer, not the stream reader
    assert counter.usage() == expected


def _split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        if point > last:
            pieces.append(body[last:point])
            last = point
    pieces.append(body[last:])
    return [p for p in pieces if p]


@settings(max_examples=80, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
    words=st.integers(min_value=0, max_value=5),
    crlf=st.booleans(),
)
def test_stripping_the_usage_the_proxy_asked_for_gives_the_stream_the_agent_asked_for(cuts, words, crlf):
    asked = answers.chat_stream(7, 9, 3, with_usage=True, words=words)
    wanted = answers.chat_stream(7, 9, 3, with_usage=False, words=words)
    if crlf:
        asked, wanted = asked.replace(b"\n", b"\r\n"), wanted.replace(b"\n", b"\r\n")
    counter = StreamCounter("chat", strip=True)
    out = b"".join(counter.feed(piece) for piece in _split(asked, cuts)) + counter.feed(b"")
    assert out == wanted
    assert counter.usage() == Usage(7, 9, 3, "gpt-4o-mini")


@pytest.mark.parametrize("crlf", [False, True])
def test_stripping_whole_events_one_chunk_each(crlf):
    """As LLM APIs stream: one event a chunk. Most chunks take the one-call path (only `,"usage":null`
    members); a comment line naming `,"usage":null` is not a data line and stays as it came."""
    comment = b': keep-alive ,"usage":null\n\n'
    asked = answers.chat_stream(7, 9, 3, with_usage=True, words=4)
    wanted = answers.chat_stream(7, 9, 3, with_usage=False, words=4)
    events = [event + b"\n\n" for event in asked.split(b"\n\n") if event]
    wanted_events = [event + b"\n\n" for event in wanted.split(b"\n\n") if event]
    events.insert(2, comment)
    wanted_events.insert(2, comment)
    if crlf:
        events = [e.replace(b"\n", b"\r\n") for e in events]
        wanted_events = [e.replace(b"\n", b"\r\n") for e in wanted_events]
    counter = StreamCounter("chat", strip=True)
    assert b"".join(counter.feed(event) for event in events) + counter.feed(b"") == b"".join(wanted_events)
    assert counter.usage() == Usage(7, 9, 3, "gpt-4o-mini")


def test_stripping_leaves_a_stream_that_carries_no_usage_alone():
    # Control: the same stripping reader over a stream without the extra chunk changes nothing.
    plain = answers.chat_stream(7, 9, with_usage=False)
    counter = StreamCounter("chat", strip=True)
    assert counter.feed(plain) + counter.feed(b"") == plain
    assert counter.usage() is None


def test_a_text_that_mentions_usage_is_not_touched():
    line = {"choices": [{"delta": {"content": 'say "usage":null, and {"usage": {"prompt_tokens": 1}}'}}], "usage": None}
    body = b"data: " + json.dumps(line, separators=(",", ":")).encode() + b"\n\n"
    counter = StreamCounter("chat", strip=True)
    out = counter.feed(body) + counter.feed(b"")
    assert json.loads(out[6:])["choices"] == line["choices"]  # the content is intact
    assert counter.usage() is None


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -1, "completion_tokens": 2},
        {"prompt_tokens": 1.5, "completion_tokens": 2},
        {"prompt_tokens": True, "completion_tokens": 2},
        {"prompt_tokens": "1", "completion_tokens": 2},
        {"completion_tokens": 2},
        {"prompt_tokens": 1, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 5}},  # cached > input
        {"prompt_tokens": 2**41, "completion_tokens": 2},
    ],
)
def test_unreadable_usage_is_none(usage):
    assert read_answer("chat", json.dumps({"usage": usage}).encode()) is None
    # control: the same shape with sound counts is read
    assert read_answer("chat", json.dumps({"usage": {"prompt_tokens": 1, "completion_tokens": 2}}).encode()) == Usage(
        1, 2, 0
    )


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1,2]", b'{"usage": null}', answers.chat_stream(1, 2, with_usage=False)],
)
def test_answers_without_usage_are_unreadable(body):
    assert read_answer("chat", body) is None


def test_an_anthropic_stream_cut_before_message_delta_is_unreadable():
    body = answers.anthropic_stream(10, 99)
    cut = body[: body.index(b"event: message_delta")]
    assert read_answer("anthropic", cut) is None


def test_an_overlong_line_passes_unread():
    from firewall.budgets import stream

    long = b"data: " + b"x" * (stream.MAX_LINE + 10) + b"\n\n" + answers.chat_stream(1, 2)
    for strip in (False, True):
        counter = StreamCounter("chat", strip=strip)
        out = b"".join(counter.feed(long[i : i + 65536]) for i in range(0, len(long), 65536)) + counter.feed(b"")
        if not strip:
            assert out == long
        assert counter.usage() == Usage(1, 2, 0, "gpt-4o-mini")


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/v1/chat/completions", "chat"),
        ("/openai/deployments/x/chat/completions?api-version=1", "chat"),
        ("/v1/responses", "responses"),
        ("/backend-api/codex/responses", "responses"),
        ("/v1/embeddings", "embeddings"),
        ("/v1/messages", "anthropic"),
        ("/v1/models", None),
        ("/v1/responses/resp_1", None),
    ],
)
def test_api_of(path, api):
    assert api_of(path) == api


@pytest.mark.parametrize(
    ("method", "path", "status", "counts"),
    [
        ("POST", "/v1/chat/completions", 200, True),
        ("POST", "/v1/responses/resp_1/cancel", 200, True),  # no known shape: counted as unreadable
        ("POST", "/backend-api/codex/responses/compact", 201, True),
        ("POST", "/v1/messages/count_tokens/batch", 200, True),  # not the free call's path: counted
        # Benign controls of the same shapes that count nothing: reads, the free token count, errors.
        ("GET", "/v1/models", 200, False),
        ("get", "/v1/responses/resp_1", 200, False),
        ("HEAD", "/v1/chat/completions", 200, False),
        ("OPTIONS", "/v1/chat/completions", 204, False),
        ("GET", "/backend-api/codex/responses", 101, False),  # a WebSocket's upgrade: its turns count
        ("POST", "/v1/messages/count_tokens", 200, False),
        ("POST", "/v1/messages/count_tokens?beta=true", 200, False),
        ("POST", "/v1/messages/count_tokens/", 200, False),
        ("POST", "/v1/chat/completions", 500, False),
        ("POST", "/v1/chat/completions", 429, False),
    ],
)
def test_which_answers_are_billed(method, path, status, counts):
    assert billed(method, path, status) is counts


def test_asking_for_usage_inserts_one_member_and_keeps_every_other_byte():
    body = b'{"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "\\u00e9 1.0"}]}'
    changed = ask_for_usage(body)
    assert changed == b'{"stream_options":{"include_usage":true},' + body[1:]
    assert json.loads(changed)["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"stream": false}', None),  # not streamed: the answer has its usage
        (b'{"messages": []}', None),
        (b'{"stream": true, "stream_options": {"include_usage": true}}', None),  # asked already
        (b"not json", None),
        (b'{"stream": true, "stream_options": "x"}', None),
        (b'{"stream": true, "stream_options": {"include_usage": false}}', {"include_usage": True}),
        (
            b'{"stream": true, "stream_options": {"include_obfuscation": false}}',
            {"include_obfuscation": False, "include_usage": True},
        ),
    ],
)
def test_asking_for_usage_only_where_needed(body, expected):
    changed = ask_for_usage(body)
    assert (json.loads(changed)["stream_options"] if changed else None) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"max_tokens": 100}', 100),
        (b'{"max_completion_tokens": 50, "max_tokens": 100}', 50),
        (b'{"max_output_tokens": 70}', 70),
        (b'{"max_tokens": 0}', None),
        (b'{"max_tokens": "100"}', None),
        (b"{}", None),
        (b"nope", None),
    ],
)
def test_requested_max_tokens(body, expected):
    assert requested_max_tokens(body) == expected


def test_prices_and_cost():
    assert PRICES_TAKEN
    assert price_of("gpt-4o-mini") == SHIPPED["gpt-4o-mini"]
    assert price_of("gpt-4o-2024-08-06") == SHIPPED["gpt-4o"]  # a dated snapshot
    assert price_of("gpt-4o-mini-2024-07-18") == SHIPPED["gpt-4o-mini"]  # the longest name it extends
    assert price_of("gpt-4omni") is None
    # A newer model of a family is priced by its own line, not by its elder's: Opus 4.5 costs a third
    # of Opus 4 (it was priced as claude-opus-4, the longest name it extends).
    assert price_of("claude-opus-4-5-20251101") == SHIPPED["claude-opus-4-5"] == Price(5.00, 0.50, 25.00)
    assert price_of("claude-opus-4-20250514") == SHIPPED["claude-opus-4"]  # control: the elder keeps its price
    assert price_of(None) is None
    override = {"gpt-4o": Price(1, 1, 1)}
    assert price_of("gpt-4o-2024-08-06", override) == Price(1, 1, 1)
    assert price_of("gpt-4o-mini", override) == SHIPPED["gpt-4o-mini"]
    # 1M fresh input at $2.50, 1M cached at $1.25, 1M output at $10 → $13.75 in millionths
    assert cost_micros(Usage(2_000_000, 1_000_000, 1_000_000), SHIPPED["gpt-4o"]) == 13_750_000
    assert cost_micros(Usage(1, 0, 0), SHIPPED["gpt-4o-mini"]) == 1  # rounded up, never down to free
    assert cost_micros(Usage(0, 0, 0), SHIPPED["gpt-4o-mini"]) == 0


@pytest.mark.parametrize(
    ("period", "now", "start", "end", "name"),
    [
        ("hour", "2026-12-07T14:53:10", "2026-12-07T14:00:00", "2026-12-07T15:00:00", "2026-12-07T14"),
        ("day", "2026-12-07T14:53:10", "2026-12-07T00:00:00", "2026-12-08T00:00:00", "2026-12-07"),
        ("week", "2026-12-09T01:00:00", "2026-12-07T00:00:00", "2026-12-14T00:00:00", "2026-12-07/w"),  # Monday
        ("month", "2026-12-31T23:59:59", "2026-12-01T00:00:00", "2027-01-01T00:00:00", "2026-12"),
        ("month", "2028-02-29T12:00:00", "2028-02-01T00:00:00", "2028-03-01T00:00:00", "2028-02"),
    ],
)
def test_calendar_windows_in_utc(period, now, start, end, name):
    from datetime import UTC, datetime

    def epoch(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()

    assert window(period, epoch(now)) == (epoch(start), epoch(end))
    assert window_id(period, epoch(now)) == name
    assert window(period, epoch(end))[0] == epoch(end)  # the end is the next window's start
