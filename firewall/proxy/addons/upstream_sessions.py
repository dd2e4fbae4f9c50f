"""TLS session resumption with upstreams: a new agent connection costs one full handshake less.

mitmproxy 12.2 builds a new `SSL.Connection` for every upstream connection from a cached
context (`net/tls.py`, `create_proxy_server_context`) and never gives it a session
(`addons/tlsconfig.py` says so in a TODO), so every agent connection that opens its own
upstream connection paid a full handshake there: key exchange and the upstream's certificate
chain checked again. This keeps the last session each upstream gave and offers it on the next
connection to the same upstream; the upstream resumes it (an abbreviated handshake) or, if
it no longer knows it, does a full one as before.

What a session is reused for, and why that is safe:

- The key is everything the handshake was checked against: the address, the name sent and
  verified (SNI), the ALPN offer, and the SSL context itself (mitmproxy makes one per set of
  trust settings: CA bundle, verify mode, client certificate). A resumed session skips the
  certificate check, so it is only offered where the same check passed for the same name.
- A session authenticates no one at the HTTP level: credentials are in each request's
  headers, so one agent's connection resuming another's session learns nothing of it.
- TLS 1.3 hands out its tickets after the handshake: the session is taken when the first
  answer's headers arrive, once the ticket has been read, and kept per key, the newest wins.
- It is kept as a copy (DER bytes), never as the connection's own session object: OpenSSL marks
  a connection's session as not resumable when the connection is freed without a close_notify
  (`ssl_clear_bad_session`), which is how most upstream connections end. CPython's `ssl`
  copies sessions for the same reason.
- Memory stays bounded: at most MAX_UPSTREAMS sessions (least recently used dropped), and a
  connection's entry is dropped when it closes or its handshake fails.
"""

from __future__ import annotations

from collections import OrderedDict

from mitmproxy import http, tls
from mitmproxy.proxy import server_hooks
from OpenSSL import SSL

MAX_UPSTREAMS = 256
_ffi, _lib = SSL._ffi, SSL._lib  # type: ignore[attr-defined]  (pyOpenSSL has no copy of a session)

Key = tuple[object, ...]


def _key(conn, ssl_conn: SSL.Connection) -> Key | None:
    if conn.address is None:
        return None
    return (tuple(conn.address), conn.sni, tuple(conn.alpn_offers or ()), ssl_conn.get_context())


def dump_session(session: SSL.Session) -> bytes:
    size = _lib.i2d_SSL_SESSION(session._session, _ffi.NULL)
    if size <= 0:
        return b""
    buffer = _ffi.new("unsigned char[]", size)
    _lib.i2d_SSL_SESSION(session._session, _ffi.new("unsigned char **", buffer))
    return _ffi.buffer(buffer, size)[:]


def load_session(data: bytes) -> SSL.Session | None:
    buffer = _ffi.new("unsigned char[]", data)
    raw = _lib.d2i_SSL_SESSION(_ffi.NULL, _ffi.new("unsigned char **", buffer), len(data))
    if raw == _ffi.NULL:
        _lib.ERR_clear_error()
        return None
    session = SSL.Session.__new__(SSL.Session)
    session._session = _ffi.gc(raw, _lib.SSL_SESSION_free)
    return session


class UpstreamSessions:
    def __init__(self, max_upstreams: int = MAX_UPSTREAMS) -> None:
        self.max_upstreams = max_upstreams
        self.sessions: OrderedDict[Key, bytes] = OrderedDict()
        self.open: dict[str, tuple[Key, SSL.Connection]] = {}  # connection id -> (key, its TLS)
        self.offered = 0  # connections a session was offered to (the upstream decides whether to resume)

    def tls_start_server(self, data: tls.TlsData) -> None:
        # mitmproxy's own tlsconfig addon runs before the firewall's: the SSL.Connection is made
        ssl_conn = data.ssl_conn
        if ssl_conn is None or data.is_dtls:
            return
        key = _key(data.conn, ssl_conn)
        if key is None:
            return
        stored = self.sessions.get(key)
        session = load_session(stored) if stored else None
        if session is not None:
            ssl_conn.set_session(session)
            self.sessions.move_to_end(key)
            self.offered += 1
        if len(self.open) < 4 * self.max_upstreams:  # a bound, should a close ever go unreported
            self.open[data.conn.id] = (key, ssl_conn)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        entry = self.open.pop(flow.server_conn.id, None)
        if entry is None:
            return
        key, ssl_conn = entry
        session = ssl_conn.get_session()
        data = dump_session(session) if session is not None else b""
        if not data:
            return
        self.sessions[key] = data
        self.sessions.move_to_end(key)
        while len(self.sessions) > self.max_upstreams:
            self.sessions.popitem(last=False)

    def tls_failed_server(self, data: tls.TlsData) -> None:
        entry = self.open.pop(data.conn.id, None)
        if entry is not None:
            self.sessions.pop(entry[0], None)  # do not offer it again

    def server_disconnected(self, data: server_hooks.ServerConnectionHookData) -> None:
        self.open.pop(data.server.id, None)
