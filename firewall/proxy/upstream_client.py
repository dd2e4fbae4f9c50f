"""The proxy's own HTTP client: token refreshes and the one retry after a 401.

It trusts exactly what mitmproxy trusts upstream (the system roots plus
`--upstream-ca`), ignores the proxy variables of the environment, and always
has a timeout. Names resolve through the event loop's `getaddrinfo`, which the
resolver has replaced: it connects only to addresses the firewall pinned.

The client (httpx, with httpcore and anyio: several MiB in every proxy process) is built on
first use: most proxies never refresh a login nor retry a request.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

CONNECT_TIMEOUT, TIMEOUT = 5.0, 15.0  # seconds


class LazyClient:
    """An `httpx.AsyncClient` made when first used; everything else is the client's own."""

    def __init__(self, trust_bundle: Path) -> None:
        self.trust_bundle = trust_bundle
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            import ssl

            import httpx

            context = ssl.create_default_context(cafile=str(self.trust_bundle))
            timeout = httpx.Timeout(TIMEOUT, connect=CONNECT_TIMEOUT)
            self._client = httpx.AsyncClient(verify=context, trust_env=False, timeout=timeout, follow_redirects=False)
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client(), name)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def upstream_client(trust_bundle: Path) -> httpx.AsyncClient:
    return LazyClient(trust_bundle)  # type: ignore[return-value]  (it stands in for one)
