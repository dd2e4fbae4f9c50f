"""The last check before the proxy opens any upstream connection: was this destination decided?

Every request the policy lets through pins its destination (host, port and the
addresses it was decided on, firewall/proxy/resolver.py). A connection to a
host:port without a live pin is refused before it is opened, whoever asked for
it: a request nobody decided, a tunnel mitmproxy would relay on its own, an
address literal (which never reaches the pinned resolver). Names are then
resolved only to their pinned addresses.
"""

from __future__ import annotations

import logging

from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from firewall.proxy.resolver import Resolver

log = logging.getLogger("firewall.proxy")


class DialGuard:
    def __init__(self, resolver: Resolver):
        self.resolver = resolver

    def server_connect(self, data: ServerConnectionHookData) -> None:
        address = data.server.address
        if address is None:
            return
        host, port = str(address[0]), int(address[1])
        if self.resolver.pinned(host, port) is None:
            data.server.error = f"{host}:{port} was not decided by the firewall; the connection was refused"
            log.warning("refused to connect to %s:%s: no request to it was let through", host, port)
