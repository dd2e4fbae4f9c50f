"""What comes back, and what the proxy does on the agent's behalf: injected secrets scrubbed from
answers (headers, bodies, streams split across chunks, compressed answers, WebSocket messages),
Content-Length exact, no redirect followed, bodies over the inspection limit refused where a
rule needs them.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import os
import time

import pytest

from firewall.redaction import SecretIndex
from tests.security.conftest import SECRET, all_audit_rows
from tests.security.support import read_head, recv_exactly, request_bytes
from tests.support.upstream import ws_read_frame

INDEX = SecretIndex.build({"openai": SECRET})


def _no_form_of_the_secret(data: bytes) -> bool:
    return SECRET.encode() not in data and INDEX.find(data) == ()


def _row_since(corpus, path: str, started: float) -> dict:
    """The audit row of the request to `path` made after `started` (epoch), once written."""
    from tests.security.conftest import all_audit_rows

    def rows() -> list[dict]:
        return [r for r in all_audit_rows(corpus.firewall.home) if r["path"] == path and r["time"] >= started]

    deadline = time.monotonic() + 5
    while not rows():
        assert time.monotonic() < deadline, f"no audit row for {path} since {started}"
        time.sleep(0.05)
    (row,) = rows()
    return row


def _keyed(corpus, path: str, headers: dict | None = None, method: str = "GET", body: bytes = b""):
    return corpus.agent.https(
        corpus.keyed, request_bytes(method, path, corpus.keyed, headers=headers, body=body), method=method
    )


def test_an_echo_of_the_injected_credential_is_masked_with_the_length_kept(corpus):
    started = time.time()
    reply = _keyed(corpus, "/echo")
    echoed = json.loads(reply.body)["headers"]["authorization"]
    assert reply.status == 200 and echoed == "Bearer " + "*" * len(SECRET)
    assert reply.headers["x-echo-auth"] == echoed
    assert int(reply.headers["content-length"]) == len(reply.body)
    assert corpus.hostile.seen[-1].headers["authorization"] == f"Bearer {SECRET}"  # it did go upstream
    assert _row_since(corpus, "/echo", started)["scrubbed"] == 1


def test_an_error_quoting_the_authorization_header_is_masked(corpus):
    started = time.time()
    reply = _keyed(corpus, "/error")
    assert reply.status == 401
    assert _no_form_of_the_secret(reply.body) and _no_form_of_the_secret(reply.headers["www-authenticate"].encode())
    assert _row_since(corpus, "/error", started)["scrubbed"] == 1


def test_the_credential_base64_encoded_at_any_offset_is_masked(corpus):
    reply = _keyed(corpus, "/basic")
    assert reply.status == 200 and _no_form_of_the_secret(reply.body)
    assert int(reply.headers["content-length"]) == len(reply.body)


@pytest.mark.parametrize("at", [0, 1, 7, 20, 33, 44, 47])
def test_a_streamed_credential_split_across_two_chunks_is_masked(corpus, at):
    reply = _keyed(corpus, f"/split?at={at}")
    expected = b"before Bearer " + b"*" * len(SECRET) + b" after"
    assert reply.status == 200 and reply.body == expected


def test_server_sent_events_are_still_streamed_and_masked(corpus):
    """The first event reaches the agent before the upstream has sent the rest (0.1 s apart)."""
    started = time.time()
    with corpus.agent.tls(corpus.keyed) as conn:
        conn.sendall(request_bytes("GET", "/sse", corpus.keyed))
        response = http.client.HTTPResponse(conn)
        response.begin()
        first = response.read1()
        first_at = time.monotonic()
        rest = response.read()
        done_at = time.monotonic()
    assert first.startswith(b"data: one") and done_at - first_at > 0.1
    assert first + rest == b"data: one\n\ndata: Bearer " + b"*" * len(SECRET) + b"\n\ndata: [DONE]\n\n"
    assert _row_since(corpus, "/sse", started)["scrubbed"] == 1


def test_the_proxy_asks_for_an_uncompressed_answer_and_unpacks_one_it_gets_anyway(corpus):
    reply = _keyed(corpus, "/gzip", headers={"Accept-Encoding": "gzip, br"})
    assert corpus.hostile.seen[-1].headers["accept-encoding"] == "identity"
    assert reply.status == 200 and "content-encoding" not in reply.headers
    assert int(reply.headers["content-length"]) == len(reply.body)
    assert json.loads(reply.body)["headers"]["authorization"] == "Bearer " + "*" * len(SECRET)
    assert _no_form_of_the_secret(gzip.compress(reply.body)) and _no_form_of_the_secret(reply.body)


def test_a_compressed_answer_that_cannot_be_unpacked_is_refused(corpus):
    reply = _keyed(corpus, "/brotli-lie")
    assert reply.status == 502 and reply.error["type"] == "upstream_unscrubbable"
    assert _no_form_of_the_secret(reply.body)
    row = corpus.row(reply)
    assert (row["decision"], row["reason"]) == ("error", "unscrubbable_response")


def test_a_websocket_message_quoting_the_credential_is_masked(corpus):
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = request_bytes(
        "GET",
        "/ws",
        corpus.keyed,
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        },
    )
    with corpus.agent.tls(corpus.keyed) as conn:
        conn.sendall(upgrade.replace(b"Connection: close\r\n", b""))
        head = read_head(conn)
        assert head.startswith(b"HTTP/1.1 101")

        assert ws_read_frame(lambda n: recv_exactly(conn, n)) == (0x1, b"you sent Bearer " + b"*" * len(SECRET))


def test_answers_of_hosts_that_get_no_credential_are_left_alone(corpus):
    """Nothing was injected, so nothing is masked: the agent's own header comes back as sent."""
    before, started = len(corpus.upstream.seen), time.time()
    reply = corpus.agent.https(
        corpus.api, request_bytes("GET", "/echo/me", corpus.api, headers={"X-Mine": "sk-not-a-vault-value-000000"})
    )
    assert reply.status == 200 and b"sk-not-a-vault-value-000000" in reply.body
    assert len(corpus.upstream.seen) == before + 1
    assert _row_since(corpus, "/echo/me", started)["scrubbed"] == 0


# ---- what the proxy does (not) do on the agent's behalf ----


def test_a_redirect_is_passed_back_never_followed(corpus):
    before_api, before_keyed = len(corpus.upstream.seen), len(corpus.hostile.seen)
    reply = _keyed(corpus, f"/redirect?to=https://{corpus.api}/v1/models")
    assert reply.status == 302 and reply.headers["location"] == f"https://{corpus.api}/v1/models"
    assert len(corpus.hostile.seen) == before_keyed + 1
    assert len(corpus.upstream.seen) == before_api  # the proxy did not go there, with or without a key


def test_the_upstream_gets_an_exact_content_length_after_injection(corpus):
    body = json.dumps({"hello": "world" * 100}).encode()
    reply = _keyed(corpus, "/echo", method="POST", body=body, headers={"Content-Type": "application/json"})
    seen = corpus.hostile.seen[-1]
    assert reply.status == 200 and seen.body == body
    assert int(seen.headers["content-length"]) == len(body)


def _chat(corpus, body: bytes, headers: dict | None = None):
    before = len(corpus.upstream.seen)
    reply = corpus.agent.https(
        corpus.api,
        request_bytes(
            "POST",
            "/v1/chat/completions",
            corpus.api,
            body=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        ),
        method="POST",
    )
    return reply, len(corpus.upstream.seen) - before


def test_a_body_over_the_inspection_limit_is_refused_where_a_rule_needs_it(corpus):
    """`block POST /v1/** when json.model != "gpt-4o-mini"` cannot read a 1.5 MiB body: it matches
    (fail closed), although the model named is the allowed one."""
    small = json.dumps({"model": "gpt-4o-mini", "messages": []}).encode()
    large = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 1_500_000}]}).encode()
    assert _chat(corpus, small)[0].status == 200
    reply, reached = _chat(corpus, large)
    assert reply.status == 403 and reached == 0
    assert (corpus.row(reply)["reason"], corpus.row(reply)["decision"]) == ("rule", "block")


def test_a_compressed_body_is_refused_where_a_rule_needs_it(corpus):
    body = gzip.compress(json.dumps({"model": "gpt-4o-mini"}).encode())
    reply, reached = _chat(corpus, body, {"Content-Encoding": "gzip"})
    assert reply.status == 403 and reached == 0


def test_a_reason_phrase_quoting_the_credential_is_masked(corpus):
    started = time.time()
    with corpus.agent.tls(corpus.keyed) as conn:
        conn.sendall(request_bytes("GET", "/reason", corpus.keyed))
        head = read_head(conn)
    assert head.startswith(b"HTTP/1.1 401 rejected Bearer " + b"*" * len(SECRET)), head
    assert _no_form_of_the_secret(head)
    assert _row_since(corpus, "/reason", started)["scrubbed"] == 1


def test_an_http1_trailer_quoting_the_credential_never_reaches_the_agent(corpus):
    """mitmproxy 12.2 does not read HTTP/1 trailers: the answer is cut before them."""
    with corpus.agent.tls(corpus.keyed) as conn:
        conn.sendall(request_bytes("GET", "/trailer", corpus.keyed))
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and _no_form_of_the_secret(answer)


def test_response_trailers_are_masked():
    """HTTP/2 trailers are sent after the response hook, streamed body or not: masked there.
    The Scrubber itself, on a flow whose request was injected with the credential."""
    from mitmproxy.http import Headers
    from mitmproxy.test import tflow

    from firewall.policy.decision import Decision, Injection, Reason, Verdict
    from firewall.proxy.addons.scrub import Scrubber
    from firewall.proxy.notes import notes_of

    class Runtime:
        secret_index = INDEX

    inject = Injection("openai", "openai", "header", "authorization", "Bearer {secret}")
    for streamed in (False, True):
        flow = tflow.tflow(resp=True)
        flow.response.stream = streamed
        flow.response.trailers = Headers([(b"x-echo-auth", f"Bearer {SECRET}".encode()), (b"x-ok", b"fine")])
        notes = notes_of(flow)
        notes.credentials = ("openai",)
        notes.decision = Decision(Verdict.ALLOW, Reason.RULE, inject=(inject,))
        Scrubber(Runtime(), auditor=None).response(flow)
        assert flow.response.trailers["x-echo-auth"] == "Bearer " + "*" * len(SECRET)
        assert flow.response.trailers["x-ok"] == "fine" and notes.scrubbed


def test_a_credential_partly_escaped_is_masked(corpus):
    reply = _keyed(corpus, "/quoted")
    assert reply.status == 200 and reply.body.count(b"*") >= 2 * (len(SECRET) - 2)
    assert b"%20" in reply.body  # the control: the escaped space before the credential is kept
    assert _no_form_of_the_secret(reply.body.replace(b"\\u", b"").replace(b"%", b""))
    assert INDEX.masker(["openai"]).mask(reply.body)[1] == 0


def test_a_websocket_message_masked_sets_scrubbed_on_a_row(corpus):
    started = time.time()
    test_a_websocket_message_quoting_the_credential_is_masked(corpus)
    deadline = time.monotonic() + 5
    while True:
        rows = [r for r in all_audit_rows(corpus.firewall.home) if r["path"] == "/ws" and r["time"] >= started]
        if any(r["scrubbed"] == 1 for r in rows):
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.05)
    assert [r["reason"] for r in rows if r["scrubbed"]] == ["scrubbed"]
