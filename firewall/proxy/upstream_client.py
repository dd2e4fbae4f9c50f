"""The proxy's own HTTP client: token refreshes and the one retry after a 401.

It trusts exactly what mitmproxy trusts upstream (the system roots plus
`--upstream-ca`), ignores the proxy variables of the environment, and always
has a timeout. Names resolve through the event loop's `getaddrinfo`, which the
resolver has replaced: it connects only to addresses the firewall pinned.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

TIMEOUT = httpx.Timeout(15.0, connect=5.0)


def upstream_client(trust_bundle: Path, timeout: httpx.Timeout = TIMEOUT) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=str(trust_bundle))
    return httpx.AsyncClient(verify=context, trust_env=False, timeout=timeout, follow_redirects=False)
