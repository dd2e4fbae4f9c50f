"""Adversarial corpus, protocol: disagreeing destinations, smuggling, tunnels that are not TLS,
plain HTTP where a credential goes, WebSocket upgrades, loops to the proxy, TRACE.

Every case is the bytes an agent writes on a raw socket (or an h2 connection), and what must
happen: what the agent gets back, what the audit log says, and that nothing the policy did not
allow reached an upstream.
"""

from __future__ import annotations

import base64
import http.client
import os
import time
from dataclasses import dataclass

import pytest

from tests.security.support import h2_exchange, read_head, read_reply, recv_exactly, request_bytes, tcp_sink
from tests.support.upstream import ws_frame, ws_read_frame


def _seen(corpus) -> int:
    return len(corpus.upstream.seen) + len(corpus.hostile.seen)


def _paths(corpus, before_api: int, before_keyed: int) -> list[str]:
    return [s.path for s in corpus.upstream.seen[before_api:]] + [s.path for s in corpus.hostile.seen[before_keyed:]]


# ---- destinations that disagree: Host header, SNI, absolute-form, :authority ----


@dataclass(frozen=True)
class Mismatch:
    attack: str
    host_header: str | None = None  # None: the CONNECT target
    sni: str | None = None
    target: str = "/v1/models"


MISMATCHES = [
    Mismatch("a Host header naming another host", host_header="evil.example"),
    Mismatch("a Host header naming the keyed host (whose requests get the credential)", host_header="KEYED"),
    Mismatch("a Host header naming another port of the same host", host_header="localhost:1"),
    Mismatch("an SNI naming another host", sni="evil.example"),
    Mismatch("an SNI naming the metadata address's name", sni="metadata.google.internal"),
    # Found a hole: inside a tunnel, mitmproxy kept the authority of an absolute-form target but only
    # the Host header was checked, so the request went to the tunnel host with another host's URL
    # (an upstream may route by it, RFC 9112 3.2.2). Fixed: firewall/proxy/addons/enforce.py claims it.
    Mismatch("an absolute-form target naming another host", target="https://evil.example/v1/models"),
    Mismatch("an absolute-form target naming the keyed host", target="https://KEYED/echo"),
]


@pytest.mark.parametrize("case", MISMATCHES, ids=[c.attack for c in MISMATCHES])
def test_destination_mismatch(corpus, case: Mismatch):
    host = (case.host_header or corpus.api).replace("KEYED", corpus.keyed)
    target = case.target.replace("KEYED", corpus.keyed)
    before = _seen(corpus)
    reply = corpus.agent.https(corpus.api, request_bytes("GET", target, host), sni=case.sni)
    assert reply.status == 403, reply
    assert _seen(corpus) == before
    assert corpus.row(reply)["reason"] == "destination_mismatch"


def _h2(corpus, headers, body=b"", validate=True):
    with corpus.agent.tls(corpus.api, alpn=["h2"]) as conn:
        assert conn.selected_alpn_protocol() == "h2"
        return h2_exchange(conn, headers, body, validate)


def _h2_head(corpus, authority: str, path: str = "/v1/models", method: str = "GET"):
    return [(":method", method), (":scheme", "https"), (":authority", authority), (":path", path)]


def test_http2_reaches_the_api_when_the_authority_is_the_tunnel(corpus):
    before = len(corpus.upstream.seen)
    status, _ = _h2(corpus, _h2_head(corpus, corpus.api))
    assert status == 200 and [s.path for s in corpus.upstream.seen[before:]] == ["/v1/models"]


@pytest.mark.parametrize("authority", ["evil.example", "KEYED", "localhost:1", "127.0.0.1:PORT"])
def test_http2_authority_naming_another_destination_is_refused(corpus, authority):
    authority = authority.replace("KEYED", corpus.keyed).replace("PORT", str(corpus.upstream.port))
    before = _seen(corpus)
    status, body = _h2(corpus, _h2_head(corpus, authority))
    assert status == 403 and b"destination" in body
    assert _seen(corpus) == before


@pytest.mark.parametrize(
    "extra",
    [
        [("host", "evil.example")],  # a Host header beside :authority
        [("x-a", "b\r\ntransfer-encoding: chunked")],  # CRLF injected into a header value
        [("transfer-encoding", "chunked")],  # a connection-specific header (forbidden in h2)
    ],
    ids=["host beside authority", "crlf in a value", "transfer-encoding"],
)
def test_http2_header_tricks_never_reach_upstream(corpus, extra):
    before = _seen(corpus)
    status, _ = _h2(corpus, _h2_head(corpus, corpus.api) + extra, validate=False)
    assert status in (None, 400, 403)
    assert _seen(corpus) == before


def test_http2_body_longer_than_its_content_length_never_reaches_upstream(corpus):
    """An h2→h1 downgrade desync: the body smuggles a second HTTP/1 request past content-length."""
    smuggled = b'{"model":"gpt-4o-mini"}' + b"GET /admin/keys HTTP/1.1\r\nHost: x\r\n\r\n"
    head = _h2_head(corpus, corpus.api, "/v1/chat/completions", "POST") + [("content-length", "23")]
    before = _seen(corpus)
    status, _ = _h2(corpus, head, smuggled, validate=False)
    assert status in (None, 400)
    assert _seen(corpus) == before


# ---- request smuggling over HTTP/1 ----

SMUGGLING = {
    "Content-Length and Transfer-Encoding together": (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {api}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\nGET /admin/keys HTTP/1.1\r\nHost: {api}\r\n\r\n"
    ),
    "two different Content-Lengths": (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {api}\r\nContent-Length: 5\r\nContent-Length: 44\r\n\r\nhello"
    ),
    "a Transfer-Encoding list": (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {api}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
    ),
    "a space before the colon of Transfer-Encoding": (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {api}\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
    ),
    "a chunk size that is not hex": (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {api}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"
    ),
    "a negative Content-Length": ("POST /v1/chat/completions HTTP/1.1\r\nHost: {api}\r\nContent-Length: -1\r\n\r\n"),
}


@pytest.mark.parametrize("raw", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_smuggling_is_refused_and_nothing_reaches_upstream(corpus, raw):
    """mitmproxy refuses the message (400, or closes the connection mid-body): nothing goes on."""
    before = _seen(corpus)
    try:
        status = corpus.agent.https(corpus.api, raw.format(api=corpus.api).encode(), method="POST").status
    except http.client.RemoteDisconnected:
        status = None
    assert status in (400, None)
    assert _seen(corpus) == before


def test_an_obs_fold_continuation_is_refused(corpus):
    """Found a hole: mitmproxy forwarded `X-A: b\\r\\n Transfer-Encoding: chunked` as is; an upstream
    that does not unfold may read the continuation as a header of its own. Fixed in the engine
    (step 1: a header holding CR, LF or NUL is malformed_request)."""
    raw = (
        f"GET /v1/models HTTP/1.1\r\nHost: {corpus.api}\r\nX-A: b\r\n Transfer-Encoding: chunked\r\n"
        f"Connection: close\r\n\r\n"
    ).encode()
    before = _seen(corpus)
    reply = corpus.agent.https(corpus.api, raw)
    assert reply.status == 403 and _seen(corpus) == before
    assert corpus.row(reply)["reason"] == "malformed_request"


def test_pipelined_requests_are_each_decided(corpus):
    """An allowed request and a blocked one in one write: the second is decided on its own."""
    raw = (
        f"GET /v1/models HTTP/1.1\r\nHost: {corpus.api}\r\n\r\n"
        f"GET /admin/keys HTTP/1.1\r\nHost: {corpus.api}\r\nConnection: close\r\n\r\n"
    ).encode()
    before = len(corpus.upstream.seen)
    with corpus.agent.tls(corpus.api) as conn:
        conn.sendall(raw)
        first, second = read_reply(conn), read_reply(conn)
    assert (first.status, second.status) == (200, 403)
    assert [s.path for s in corpus.upstream.seen[before:]] == ["/v1/models"]


def test_a_connect_inside_a_tunnel_is_refused(corpus):
    with corpus.agent.tls(corpus.api) as conn:
        conn.sendall(b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n")
        reply = read_reply(conn, "CONNECT")
    assert reply.status == 400


# ---- tunnels that are not TLS, plain HTTP where a credential goes ----


def test_a_connect_to_a_port_that_is_not_tls_carries_nothing(corpus):
    """CONNECT to an SSH-like service, then raw bytes: the proxy never opens the upstream or relays."""
    with tcp_sink() as (port, received):
        sock, refused = corpus.agent.connect(f"localhost:{port}")
        assert refused is None
        sock.sendall(b"SSH-2.0-OpenSSH_9.2 exfil\r\n" + os.urandom(64))
        sock.settimeout(5)
        assert sock.recv(100) == b""  # closed, nothing relayed back
        sock.close()
    assert received == []
    rows = _tcp_rows_once_written(corpus, port)
    assert [(r["decision"], r["reason"]) for r in rows] == [("block", "not_http")]


def _tcp_rows_once_written(corpus, port: int, timeout: float = 5.0) -> list[dict]:
    """The TCP rows for `port`, once the writer has written one (it writes in batches)."""
    from tests.security.conftest import all_audit_rows

    def rows() -> list[dict]:
        return [r for r in all_audit_rows(corpus.firewall.home) if r["method"] == "TCP" and r["port"] == port]

    deadline = time.monotonic() + timeout
    while not rows():
        assert time.monotonic() < deadline, f"no audit row for the TCP tunnel to port {port}"
        time.sleep(0.05)
    time.sleep(0.5)  # two writer intervals: a second row for the same tunnel would be in by now
    return rows()


def test_plain_http_to_the_keyed_host_is_refused(corpus):
    before = len(corpus.hostile.seen)
    reply = corpus.agent.plain(
        request_bytes("GET", f"http://{corpus.keyed}/echo", corpus.keyed, auth=corpus.agent.auth)
    )
    assert reply.status == 403 and corpus.row(reply)["reason"] == "plain_http_credential"
    assert len(corpus.hostile.seen) == before


def test_plain_http_inside_a_connect_tunnel_to_the_keyed_host_is_refused(corpus):
    """No TLS after CONNECT: the credential would travel in clear to whatever answers."""
    sock, refused = corpus.agent.connect(corpus.keyed)
    assert refused is None
    before = len(corpus.hostile.seen)
    with sock:
        sock.sendall(request_bytes("GET", "/echo", corpus.keyed))
        reply = read_reply(sock)
    assert reply.status == 403 and corpus.row(reply)["reason"] == "plain_http_credential"
    assert len(corpus.hostile.seen) == before


# ---- WebSocket ----


def _upgrade(path: str, host: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("path", ["/admin/ws", "/v1/../admin/ws", "/ws%2f..%2fadmin"])
def test_a_websocket_upgrade_to_a_blocked_path_is_refused(corpus, path):
    """426, not 403: a client that can also speak plain HTTP falls back at once (enforce.py)."""
    before = len(corpus.upstream.seen)
    reply = corpus.agent.https(corpus.api, _upgrade(path, corpus.api))
    assert reply.status == 426
    assert reply.error["type"] == "policy_blocked"
    assert len(corpus.upstream.seen) == before


@pytest.mark.parametrize("path", ["/admin/ws", "/v1/../admin/ws"])
def test_the_same_blocked_path_without_an_upgrade_is_a_403(corpus, path):
    """The control: only a WebSocket upgrade is answered 426."""
    before = len(corpus.upstream.seen)
    plain = _upgrade(path, corpus.api).replace(b"Upgrade: websocket\r\nConnection: Upgrade\r\n", b"")
    reply = corpus.agent.https(corpus.api, plain)
    assert reply.status == 403
    assert len(corpus.upstream.seen) == before


def test_a_websocket_upgrade_to_an_allowed_path_works(corpus):
    with corpus.agent.tls(corpus.api) as conn:
        conn.sendall(_upgrade("/ws/echo", corpus.api))
        head = read_head(conn)
        assert head.startswith(b"HTTP/1.1 101")
        conn.sendall(ws_frame(0x1, b"hello", mask=os.urandom(4)))

        assert ws_read_frame(lambda n: recv_exactly(conn, n)) == (0x1, b"echo: hello")


def test_a_vault_value_sent_on_an_open_websocket_is_dropped_and_logged(corpus):
    """The upgrade was allowed; what the agent sends afterwards is scanned too."""
    from tests.security.conftest import SECRET, all_audit_rows

    with corpus.agent.tls(corpus.api) as conn:
        conn.sendall(_upgrade("/ws/echo", corpus.api))
        head = read_head(conn)
        assert head.startswith(b"HTTP/1.1 101")
        conn.sendall(ws_frame(0x1, f"here it is: {SECRET}".encode(), mask=os.urandom(4)))
        conn.sendall(ws_frame(0x1, b"hello", mask=os.urandom(4)))

        # the upstream only ever got the second message
        assert ws_read_frame(lambda n: recv_exactly(conn, n)) == (0x1, b"echo: hello")
    deadline = time.monotonic() + 5
    while not (
        rows := [
            r
            for r in all_audit_rows(corpus.firewall.home)
            if r["path"] == "/ws/echo" and r["decision"] == "exfiltration"
        ]
    ):
        assert time.monotonic() < deadline, "no exfiltration row for the WebSocket message"
        time.sleep(0.05)
    assert rows[-1]["reason"] == "exfiltration" and '"openai"' in rows[-1]["detail"]
    assert SECRET not in rows[-1]["detail"]


# ---- loops to the proxy itself, TRACE ----


def test_a_request_to_the_proxys_own_address_is_refused(corpus):
    port = corpus.proxy.port
    plain = corpus.agent.plain(
        request_bytes("GET", f"http://127.0.0.1:{port}/", f"127.0.0.1:{port}", auth=corpus.agent.auth)
    )
    tunnel = corpus.agent.https(f"127.0.0.1:{port}", request_bytes("GET", "/", f"127.0.0.1:{port}"))
    by_name = corpus.agent.https(f"localhost:{port}", request_bytes("GET", "/", f"localhost:{port}"))
    assert [corpus.row(r)["reason"] for r in (plain, tunnel, by_name)] == [
        "private_address",
        "private_address",
        "default_no_host",
    ]


def test_the_mitmproxy_onboarding_app_is_not_served(corpus):
    """Found a hole: mitmproxy answers http://mitm.it itself (its onboarding app) before any addon
    of ours decides. Fixed: `onboarding=False` in firewall/proxy/server.py."""
    reply = corpus.agent.plain(request_bytes("GET", "http://mitm.it/cert/pem", "mitm.it", auth=corpus.agent.auth))
    assert reply.status == 403 and corpus.row(reply)["reason"] == "default_no_host"


@pytest.mark.parametrize("method", ["TRACE", "TRACK"])
def test_trace_is_refused_even_where_a_rule_allows_it(corpus, method):
    before = len(corpus.hostile.seen)
    reply = corpus.agent.https(corpus.keyed, request_bytes(method, "/echo", corpus.keyed), method=method)
    assert reply.status == 403 and corpus.row(reply)["reason"] == "unsafe_method"
    assert len(corpus.hostile.seen) == before
    control = corpus.agent.https(corpus.keyed, request_bytes("OPTIONS", "/echo", corpus.keyed), method="OPTIONS")
    assert control.status == 200


@pytest.mark.parametrize("method", ["get", "Get", "dElEtE"])
def test_a_method_in_another_case_is_refused(corpus, method):
    """Found a hole: mitmproxy upper-cases `.method`, so "get" was decided as GET but sent upstream as
    "get" (an upstream may read it as another method, or as GET where GET was never decided on).
    Fixed: firewall/proxy/addons/enforce.py gives the engine the method as sent."""
    before = _seen(corpus)
    reply = corpus.agent.https(corpus.api, request_bytes(method, "/v1/models", corpus.api))
    assert reply.status == 403 and corpus.row(reply)["reason"] == "malformed_request"
    assert _seen(corpus) == before
