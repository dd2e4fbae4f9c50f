"""The pure secret detector and masker: every form a naive exfiltration uses, and no false alarm."""

from __future__ import annotations

import base64
import gzip
import json
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firewall.redaction import MIN_SECRET_CHARS, SecretIndex, secret_values

SECRET = "sk-proj-Sc4nM3/0123456789+abcdefXYZ"
RAW = SECRET.encode()
INDEX = SecretIndex.build({"openai": SECRET, "short": "abc123", "other": "ghp_" + "A" * 36})


def _mixed_case_percent(text: str) -> str:
    return "".join(f"%{ord(c):02x}" if i % 2 else f"%{ord(c):02X}" for i, c in enumerate(text))


CARRIERS = {
    "raw": RAW,
    "in a header line": b"x-debug: " + RAW,
    "percent-encoded, every byte": quote(SECRET, safe="").encode(),
    "percent-encoded, mixed hex case": _mixed_case_percent(SECRET).encode(),
    "percent-encoded twice": quote(quote(SECRET, safe=""), safe="").encode(),
    "percent-encoded, in part": SECRET.replace("/", "%2F").replace("+", "%2b").encode(),
    "json unicode escapes": json.dumps({"k": SECRET}).replace("s", "\\u0073").encode(),
    "json escaped slash": SECRET.replace("/", "\\/").encode(),
    "base64": base64.b64encode(RAW),
    "base64, offset 1": base64.b64encode(b"x" + RAW),
    "base64, offset 2": base64.b64encode(b"xy" + RAW),
    "base64 url-safe": base64.urlsafe_b64encode(b"user:" + RAW),
    "base64 url-safe, percent-encoded": quote(base64.b64encode(b"z" + RAW).decode(), safe="").encode(),
    "base64 with MIME line breaks": b"\r\n".join(base64.encodebytes(b"12" + RAW)[i : i + 16] for i in range(0, 80, 16)),
    "hex": RAW.hex().encode(),
    "hex upper case": RAW.hex().upper().encode(),
    "split by a line break": RAW[:10] + b"\n" + RAW[10:],
    "hex in mixed case": "".join(c.upper() if i % 3 else c for i, c in enumerate(RAW.hex())).encode(),
    "broken by a JSON \\n": json.dumps({"k": SECRET[:10] + "\n" + SECRET[10:]}).encode(),
    "broken by a JSON \\u000a": json.dumps({"k": SECRET[:10] + "\n" + SECRET[10:]}).replace("\\n", "\\u000a").encode(),
    "broken by %0A": quote(SECRET[:10] + "\n" + SECRET[10:], safe="").encode(),
    "broken by + in a form": b"q=" + quote(SECRET[:10], safe="").encode() + b"+" + quote(SECRET[10:], safe="").encode(),
    "base64 of a file (76 columns) in JSON": json.dumps(
        {"file": base64.encodebytes(b"x" * 54 + RAW).decode()}
    ).encode(),
    "base64 of a file (76 columns) in a form": b"file=" + quote(base64.encodebytes(b"y" * 54 + RAW)).encode(),
}


@pytest.mark.parametrize("carrier", CARRIERS.values(), ids=CARRIERS.keys())
def test_every_form_is_found(carrier):
    assert INDEX.find(b"GET /x?a=1", b"prefix " + carrier + b" suffix") == ("openai",)


def test_a_compressed_secret_is_not_found_by_the_scanner_alone():
    """The scanner reads bytes; unpacking a compressed body is the proxy's job (firewall.proxy.bodies)."""
    assert INDEX.find(gzip.compress(RAW)) == ()


def test_ordinary_requests_find_nothing():
    assert (
        INDEX.find(
            b"POST /v1/chat/completions",
            b"content-type: application/json",
            json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode(),
            base64.b64encode(b"sk-proj-something-else-entirely"),
        )
        == ()
    )


def test_short_values_are_not_indexed():
    assert secret_values("abc123") == () and len("abc123") < MIN_SECRET_CHARS
    assert INDEX.find(b"abc123 abc123") == ()
    assert "short" not in INDEX.names


def test_an_oauth_login_is_indexed_by_its_tokens():
    login = json.dumps(
        {
            "auth_mode": "chatgpt",
            "last_refresh": "2025-01-01T00:00:00Z",
            "tokens": {
                "access_token": "eyJhbGciOi.access.token-value",
                "refresh_token": "rt_0123456789",
                "account_id": "acct-0000-1111",
            },
        }
    )
    assert set(secret_values(login)) == {"eyJhbGciOi.access.token-value", "rt_0123456789"}
    index = SecretIndex.build({"codex": login})
    assert index.find(b"refresh_token=rt_0123456789") == ("codex",)
    assert index.find(b"2025-01-01T00:00:00Z acct-0000-1111") == ()


def test_an_empty_vault_finds_nothing_and_masks_nothing():
    empty = SecretIndex.build({})
    assert empty.find(RAW) == () and empty.redact(SECRET) == SECRET
    assert empty.masker(["openai"]).mask(RAW) == (RAW, 0)


def test_redact_hides_every_form_for_logs():
    text = f"a {SECRET} b {quote(SECRET, safe='')} c {base64.b64encode(b'u:' + RAW).decode()}"
    redacted = INDEX.redact(text)
    assert SECRET not in redacted and quote(SECRET, safe="") not in redacted
    assert INDEX.find(redacted.encode()) == ()


def test_masking_keeps_the_length():
    body = b'{"echo": "Bearer ' + RAW + b'", "b64": "' + base64.b64encode(b"u:" + RAW) + b'"}'
    masked, count = INDEX.masker(["openai"]).mask(body)
    assert len(masked) == len(body) and count == 2
    assert INDEX.find(masked) == ()


def test_the_masker_only_masks_the_entries_it_was_built_for():
    other = ("ghp_" + "A" * 36).encode()
    masked, count = INDEX.masker(["openai"]).mask(RAW + b" " + other)
    assert count == 1 and masked.endswith(other)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60), st.binary(max_size=60), st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_a_stream_is_masked_whatever_the_chunk_boundaries(before, after, cuts):
    body = before + RAW + after + base64.b64encode(b"k:" + RAW) + RAW
    stream = INDEX.masker(["openai"]).stream()
    out, at = [], 0
    for size in cuts * (len(body) // sum(cuts) + 1):
        out.append(stream.feed(body[at : at + size]))
        at += size
        if at >= len(body):
            break
    out.append(stream.feed(b""))
    masked = b"".join(out)
    assert len(masked) == len(body)
    assert masked == INDEX.masker(["openai"]).mask(body)[0]
    assert RAW not in masked and stream.count >= 3


ESCAPED_ECHOES = {
    "quote(value): '/' left as is": quote(SECRET).encode(),
    "percent-encoded, in part": SECRET.replace("/", "%2F").replace("+", "%2b").encode(),
    "one character percent-encoded": ("%73" + SECRET[1:]).encode(),
    "json \\u00XX escapes, in part": SECRET.replace("s", "\\u0073").replace("-", "\\u002D").encode(),
    "json \\u00XX escapes, every character": "".join(f"\\u{ord(c):04x}" for c in SECRET).encode(),
    "percent and json escapes mixed": ("\\u0073" + SECRET[1:2] + "%2d" + SECRET[3:]).encode(),
}


@pytest.mark.parametrize("echo", ESCAPED_ECHOES.values(), ids=ESCAPED_ECHOES.keys())
def test_a_value_spelled_with_escapes_is_masked_whole(echo):
    body = b'{"echoed": "' + echo + b'", "next": "kept"}'
    masked, count = INDEX.masker(["openai"]).mask(body)
    assert count >= 1 and len(masked) == len(body)
    assert masked.replace(b"*", b"") == b'{"echoed": "", "next": "kept"}'


def test_control_escapes_that_spell_something_else_are_left_alone():
    body = b'{"path": "a%2Fb", "text": "caf\\u00e9 %41BC", "near": "' + quote(SECRET[:-1]).encode() + b'"}'
    assert INDEX.masker(["openai"]).mask(body) == (body, 0)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(ESCAPED_ECHOES.values())),
    st.binary(max_size=40),
    st.lists(st.integers(1, 13), min_size=1, max_size=6),
)
def test_an_escaped_value_is_masked_in_a_stream_whatever_the_chunk_boundaries(echo, before, cuts):
    body = before + echo + b" and " + echo
    stream = INDEX.masker(["openai"]).stream()
    out, at = [], 0
    for size in cuts * (len(body) // sum(cuts) + 1):
        out.append(stream.feed(body[at : at + size]))
        at += size
        if at >= len(body):
            break
    out.append(stream.feed(b""))
    masked = b"".join(out)
    assert masked == INDEX.masker(["openai"]).mask(body)[0]
    assert stream.count >= 2 and echo not in masked


@pytest.mark.parametrize(
    "text",
    [
        b"a JSON body with \\n line breaks and \\u000a escapes of ordinary text",
        b"q=hello+world&hex=DEADBEEF0123456789abcdef",
        json.dumps({"file": base64.encodebytes(b"z" * 300).decode()}).encode(),
    ],
    ids=["json escapes", "a form with + and hex", "a base64 file"],
)
def test_control_the_new_views_find_nothing_in_ordinary_text(text):
    assert INDEX.find(text) == ()
