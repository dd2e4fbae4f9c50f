"""OpenSSL's read and write buffers only while a TLS connection uses them (SSL_MODE_RELEASE_BUFFERS).

Every TLS connection (agent to proxy, proxy to upstream) otherwise keeps a read and a write buffer
of about 17 KB each for as long as it is open, used or idle: two per agent connection, so about
4 MiB of the proxy's peak at 64 connections (docs/performance.md, "Lean and quick"). With the
mode set, OpenSSL frees a buffer once it is empty and takes a new one for the next record; nginx
sets it on every connection. The `SSL.Connection` is made before this addon runs (by AgentTLS
for the agent's side, else by mitmproxy's tlsconfig: both are registered first, master.py);
pyOpenSSL sets modes only on contexts, which are shared between connections, so it is set on each
connection, as mitmproxy sets its verify parameters.
"""

from __future__ import annotations

from mitmproxy import tls
from OpenSSL import SSL

_lib = SSL._lib  # type: ignore[attr-defined]


def release_buffers(ssl_conn: SSL.Connection) -> None:
    _lib.SSL_set_mode(ssl_conn._ssl, _lib.SSL_MODE_RELEASE_BUFFERS)  # type: ignore[attr-defined]


def mode_of(ssl_conn: SSL.Connection) -> int:
    """The connection's mode bits (SSL_set_mode adds none and returns them)."""
    return _lib.SSL_set_mode(ssl_conn._ssl, 0)  # type: ignore[attr-defined]


class ReleaseTLSBuffers:
    def tls_start_client(self, data: tls.TlsData) -> None:
        if data.ssl_conn is not None:
            release_buffers(data.ssl_conn)

    def tls_start_server(self, data: tls.TlsData) -> None:
        if data.ssl_conn is not None:
            release_buffers(data.ssl_conn)
