"""HTTP/2 in front of an HTTP/1.1 upstream: every request the upstream gets is framed, or refused.

An HTTP/2 request ends where its stream ends; an HTTP/1.1 request where its Content-Length or
chunking says. A request that crossed from one to the other without either was sent on with no
framing at all, so its body became a second request that nobody decided. Each case has a control
of the same shape that must go through. The upstreams here speak HTTP/1.1 only.
"""

from __future__ import annotations

import pytest

from tests.security.support import h2_exchange, request_bytes

SMUGGLED = b"GET /admin/keys HTTP/1.1\r\nHost: x\r\n\r\n"


def _post(corpus, headers=(), body=b"", trailers=None, authority=None, method="POST"):
    head = [
        (":method", method),
        (":scheme", "https"),
        (":authority", authority or corpus.keyed),
        (":path", "/echo"),
        *headers,
    ]
    with corpus.agent.tls(corpus.keyed, alpn=["h2"]) as conn:
        assert conn.selected_alpn_protocol() == "h2"
        return h2_exchange(conn, head, body, validate=False, trailers=trailers)


def _seen_paths(corpus, before: int) -> list[str]:
    return [s.path for s in corpus.hostile.seen[before:]]


def test_control_a_body_with_its_content_length_goes_through(corpus):
    before = len(corpus.hostile.seen)
    status, _ = _post(corpus, [("content-length", "5")], b"hello")
    assert status == 200
    assert _seen_paths(corpus, before) == ["/echo"] and corpus.hostile.seen[-1].body == b"hello"


@pytest.mark.parametrize(
    "body",
    [b"hello" + SMUGGLED, SMUGGLED, b"x" * 60_000 + SMUGGLED],
    ids=["after a body", "as the whole body", "after a body of several frames"],
)
def test_a_body_without_content_length_is_framed_not_a_second_request(corpus, body):
    before = len(corpus.hostile.seen)
    status, _ = _post(corpus, body=body)
    assert status == 200
    assert _seen_paths(corpus, before) == ["/echo"]  # one request, never /admin/keys
    seen = corpus.hostile.seen[-1]
    assert seen.body == body and seen.headers.get("content-length") == str(len(body))


def test_an_empty_post_is_framed_too(corpus):
    before = len(corpus.hostile.seen)
    status, _ = _post(corpus)
    assert status == 200 and _seen_paths(corpus, before) == ["/echo"]
    assert corpus.hostile.seen[-1].headers.get("content-length") == "0"


def test_an_empty_get_goes_out_with_no_length(corpus):
    """RFC 9110: no Content-Length on a bodiless GET; a length the agent claimed is dropped."""
    before = len(corpus.hostile.seen)
    status, _ = _post(corpus, method="GET")
    assert status == 200 and _seen_paths(corpus, before) == ["/echo"]
    assert "content-length" not in corpus.hostile.seen[-1].headers


def test_a_get_with_a_body_keeps_its_length(corpus):
    before = len(corpus.hostile.seen)
    status, _ = _post(corpus, body=SMUGGLED, method="GET")
    assert status == 200 and _seen_paths(corpus, before) == ["/echo"]
    assert corpus.hostile.seen[-1].headers.get("content-length") == str(len(SMUGGLED))


def test_request_trailers_are_refused(corpus):
    """A trailer cannot be sent on a Content-Length request, and would carry data no rule read."""
    before = len(corpus.hostile.seen)
    status, body = _post(corpus, body=b"hello", trailers=[("x-checksum", "abc")])
    assert status == 400 and b"trailer" in body
    assert _seen_paths(corpus, before) == []


@pytest.mark.parametrize(
    "hosts",
    [
        ["evil.example"],
        ["KEYED", "evil.example"],
        ["evil.example", "KEYED"],
    ],
    ids=["another host", "a second host after the right one", "the right one second"],
)
def test_host_headers_that_disagree_with_the_authority_are_refused(corpus, hosts):
    before = len(corpus.hostile.seen)
    headers = [("host", h.replace("KEYED", corpus.keyed)) for h in hosts]
    status, _ = _post(corpus, [("content-length", "5"), *headers], b"hello")
    assert status in (None, 400, 403)  # None: the stream was reset
    assert _seen_paths(corpus, before) == []


def test_control_a_host_header_equal_to_the_authority_goes_through(corpus):
    before = len(corpus.hostile.seen)
    status, _ = _post(corpus, [("content-length", "5"), ("host", corpus.keyed)], b"hello")
    assert status == 200 and _seen_paths(corpus, before) == ["/echo"]


@pytest.mark.parametrize("second", ["evil.example", "KEYED", None], ids=["another host", "the keyed host", "control"])
def test_a_second_host_header_over_http1_is_claimed_too(corpus, second):
    before = len(corpus.upstream.seen) + len(corpus.hostile.seen)
    headers = {"Host": second.replace("KEYED", corpus.keyed)} if second else {}
    reply = corpus.agent.https(corpus.api, request_bytes("GET", "/v1/models", corpus.api, headers=headers))
    if second is None:
        assert reply.status == 200
        return
    assert reply.status in (400, 403), reply
    assert len(corpus.upstream.seen) + len(corpus.hostile.seen) == before
