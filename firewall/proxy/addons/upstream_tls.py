"""The name the upstream TLS handshake sends and verifies: the destination's, without a trailing dot.

mitmproxy takes the upstream SNI (and the name it verifies the certificate
against) from the client's SNI, else the CONNECT host. A client may write
"api.example.com." (a fully qualified name, same host): OpenSSL refuses that
as a name to verify, and mitmproxy then left the request hanging. The decision
was made on the name without its dot, so the handshake uses that name too.
"""

from __future__ import annotations

from mitmproxy.proxy import server_hooks


class UpstreamTLSName:
    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        server = data.server
        name = server.sni or data.client.sni or (server.address[0] if server.address else None)
        if isinstance(name, str) and name.endswith("."):
            server.sni = name.rstrip(".")
