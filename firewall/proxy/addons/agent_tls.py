"""The agent's TLS handshake with the proxy: one SSL context per leaf certificate, made once.

For every agent connection, mitmproxy's tlsconfig (12.2) picks the leaf certificate (names
made into x509 objects, the certificate store searched), then loads that leaf's certificate
and private key into the new `SSL.Connection`: pyOpenSSL writes both out as DER and parses
them back (`d2i_X509`, and `d2i_PrivateKey` through OpenSSL 3's decoders) on every
connection. Counted with callgrind (docs/performance.md, "Lean and quick"), that is work
a new connection need not repeat.

This addon runs just before mitmproxy's tlsconfig (firewall/proxy/master.py) and hands it a
ready connection, which tlsconfig leaves as it is ("a user addon has already provided the
pyOpenSSL context"). The SSL context is the one mitmproxy would build
(`create_client_proxy_context`, with the same arguments: versions, ciphers, ALPN choice, DH
parameters), with the leaf's certificate and key set on the context once; a connection is then
only `SSL_new` from it. The leaf is the one mitmproxy's own `get_cert` picks, cached under
everything that choice reads here (the name the agent sent, else the proxy's own address, and
the CONNECT host), so an agent is never handed another host's certificate. Whatever this does
not mirror (client certificates requested, upstream certificates copied, DTLS, ciphers set per
connection) is left to mitmproxy, as are any option change's first connections (the cache is
emptied).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from mitmproxy import ctx, tls
from mitmproxy.addons import tlsconfig
from mitmproxy.certs import CertStore, CertStoreEntry
from mitmproxy.net import tls as net_tls
from mitmproxy.proxy.layers import modes
from OpenSSL import SSL

MAX_LEAVES = 256  # leaf contexts kept (least recently used dropped); mitmproxy's store keeps 100
RENEW_BEFORE = 24 * 3600  # seconds before a leaf expires that its context is made again

Key = tuple[str | None, str | None, str | None]


class AgentTLS:
    def __init__(self, max_leaves: int = MAX_LEAVES) -> None:
        self.max_leaves = max_leaves
        # key -> (the certificate store it came from, the context, when to make it again)
        self.contexts: OrderedDict[Key, tuple[CertStore, SSL.Context, float]] = OrderedDict()
        self.made = 0  # contexts built: one per leaf, not one per connection (tests read it)

    def configure(self, updated: set[str]) -> None:
        self.contexts.clear()  # any option may change what mitmproxy would build

    def tls_start_client(self, tls_start: tls.TlsData) -> None:
        if tls_start.ssl_conn is not None or tls_start.is_dtls or not _mirrored_options():
            return
        client, context = tls_start.conn, tls_start.context
        if client.cipher_list:  # set for this connection by someone else: mitmproxy's own path
            return
        config = ctx.master.addons.get("tlsconfig")
        if config is None or config.certstore is None:
            return
        server_host = str(context.server.address[0]) if context.server.address else None
        key: Key = (client.sni, None if client.sni else str(client.sockname[0]), server_host)
        hit = self.contexts.get(key)
        if hit is None or hit[0] is not config.certstore or hit[2] <= time.time():
            entry = config.get_cert(context)  # mitmproxy's choice of leaf, made once per name
            hit = (config.certstore, self._build(entry, config.certstore), _renew_at(entry))
            self.contexts[key] = hit
            while len(self.contexts) > self.max_leaves:
                self.contexts.popitem(last=False)
        else:
            self.contexts.move_to_end(key)
        ssl_conn = SSL.Connection(hit[1])
        # As tlsconfig does: a TLS connection to the proxy itself (a secure web proxy) speaks HTTP/1.
        secure_web_proxy = len(context.layers) == 2 and isinstance(context.layers[0], modes.HttpProxy)
        ssl_conn.set_app_data(
            tlsconfig.AppData(
                client_alpn=b"http/1.1" if secure_web_proxy else client.alpn,
                server_alpn=context.server.alpn,
                http2=ctx.options.http2,
            )
        )
        ssl_conn.set_accept_state()
        tls_start.ssl_conn = ssl_conn

    def _build(self, entry: CertStoreEntry, store: CertStore) -> SSL.Context:
        options = ctx.options
        minimum = net_tls.Version[options.tls_version_client_min]
        # The uncached builder: this context gets a certificate of its own, so it is never shared.
        build = net_tls.create_client_proxy_context.__wrapped__  # type: ignore[attr-defined]
        ssl_ctx = build(
            method=net_tls.Method.TLS_SERVER_METHOD,
            min_version=minimum,
            max_version=net_tls.Version[options.tls_version_client_max],
            cipher_list=tuple(tlsconfig._default_ciphers(minimum)),
            ecdh_curve=net_tls.get_curve(options.tls_ecdh_curve_client),
            chain_file=entry.chain_file,
            request_client_cert=False,
            alpn_select_callback=tlsconfig.alpn_select_callback,
            extra_chain_certs=(),
            dhparams=store.dhparams,
        )
        ssl_ctx.use_certificate(entry.cert.to_cryptography())
        ssl_ctx.use_privatekey(entry.privatekey)
        self.made += 1
        return ssl_ctx


def _mirrored_options() -> bool:
    """Whether mitmproxy's options are ones `AgentTLS` builds the same context for."""
    options = ctx.options
    return not (
        options.request_client_cert
        or options.add_upstream_certs_to_client_chain
        or options.upstream_cert
        or options.ciphers_client
    )


def _renew_at(entry: CertStoreEntry) -> float:
    return entry.cert.notafter.timestamp() - RENEW_BEFORE
