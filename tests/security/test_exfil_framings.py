"""The exfiltration guard unpacks a body however it is packed: every gzip member and zstd frame,
packed inside packed, by its first bytes when no Content-Encoding says so; and it reads the method.
Each carrier has a control: the same packing of ordinary text finds nothing."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib

import pytest
import zstandard

from firewall.policy import Request
from firewall.proxy.bodies import MAX_LAYERS, decode
from firewall.proxy.exfil import carried_secrets
from firewall.redaction import SecretIndex

SECRET = "sk-proj-Fr4m1ngKEY0123456789abcdefXYZ"
INDEX = SecretIndex.build({"openai": SECRET})


def _zstd_frames(*parts: bytes) -> bytes:
    return b"".join(zstandard.ZstdCompressor().compress(p) for p in parts)


CARRIERS = {
    # (body, Content-Encoding)
    "two gzip members, the value in the second": (
        lambda v: (gzip.compress(b"harmless " * 10) + gzip.compress(v), "gzip")
    ),
    "two zstd frames, the value in the second": (lambda v: (_zstd_frames(b"harmless", v), "zstd")),
    "gzip inside gzip": (lambda v: (gzip.compress(gzip.compress(v)), "gzip")),
    "a gzip file without Content-Encoding": (lambda v: (gzip.compress(v), None)),
    "a zstd file without Content-Encoding": (lambda v: (_zstd_frames(v), None)),
    "a zlib stream without Content-Encoding": (lambda v: (zlib.compress(v), None)),
    "a bzip2 file": (lambda v: (bz2.compress(v), None)),
    "an xz file": (lambda v: (lzma.compress(v), None)),
    "xz inside gzip inside zstd": (lambda v: (_zstd_frames(gzip.compress(lzma.compress(v))), None)),
}


def _request(body: bytes, encoding: str | None, method: str = "POST") -> tuple[Request, bytes, str | None]:
    headers = (("content-encoding", encoding),) if encoding else ()
    return Request(method, "https", "api.example.com", 443, "/upload", headers=headers), body, encoding


@pytest.mark.parametrize("make", CARRIERS.values(), ids=CARRIERS.keys())
def test_a_packed_value_is_found(make):
    body, encoding = make(b'{"note": "' + SECRET.encode() + b'"}')
    request, body, encoding = _request(body, encoding)
    assert carried_secrets(INDEX, request, body, encoding) == ("openai",)


@pytest.mark.parametrize("make", CARRIERS.values(), ids=CARRIERS.keys())
def test_control_the_same_packing_of_ordinary_text_finds_nothing(make):
    body, encoding = make(b'{"note": "nothing secret in here at all"}')
    request, body, encoding = _request(body, encoding)
    assert carried_secrets(INDEX, request, body, encoding) == ()


def test_the_value_as_the_method_is_found():
    assert carried_secrets(INDEX, _request(b"", None, method=SECRET)[0], b"", None) == ("openai",)
    assert carried_secrets(INDEX, _request(b"", None, method="PROPFIND")[0], b"", None) == ()


def test_packing_deeper_than_the_bound_stops_there():
    body = b"x" + SECRET.encode()
    for _ in range(MAX_LAYERS + 1):
        body = gzip.compress(body)
    request, body, encoding = _request(body, None)
    assert carried_secrets(INDEX, request, body, encoding) == ()  # documented: MAX_LAYERS deep


def test_bytes_after_the_last_gzip_member_are_ignored_as_gzip_does():
    decoded = decode(gzip.compress(b"one") + gzip.compress(b"two") + b"\x00\x00junk", "gzip", 1 << 20)
    assert decoded.data == b"onetwo" and decoded.complete


@pytest.mark.parametrize("payload", ["vault value", "ordinary text"])
def test_a_gzip_file_without_content_encoding_is_scanned_through_the_proxy(corpus, payload):
    from tests.security.conftest import SECRET as CORPUS_SECRET
    from tests.security.support import request_bytes

    text = CORPUS_SECRET if payload == "vault value" else "nothing secret in here at all"
    body = gzip.compress(gzip.compress(text.encode()))  # and packed twice
    before = len(corpus.upstream.seen)
    reply = corpus.agent.https(corpus.api, request_bytes("GET", "/v1/models", corpus.api, body=body))
    if payload == "ordinary text":
        assert reply.status == 200 and len(corpus.upstream.seen) == before + 1
        return
    assert reply.status == 403 and reply.error["type"] == "exfiltration_blocked"
    assert len(corpus.upstream.seen) == before
