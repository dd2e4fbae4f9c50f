"""The one retry after an upstream 401 on a request that carried an oauth access token.

The request already went upstream with the old token. If the keeper gets a
new one (or another request already did), the request is sent once more with
it and the agent gets that answer; otherwise the agent gets the 401, or the
keeper's reason why the login cannot be refreshed. Never more than one retry.

A 401 to an oauth request is read whole (not streamed), so this hook can still
replace it. A refused WebSocket upgrade is not replayed: the token is
refreshed, and the client's next attempt carries the new one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mitmproxy import http

from firewall.policy import Injection
from firewall.policy.outcomes import Outcome
from firewall.proxy.inject import CredentialUnavailable, OAuthAccess, set_oauth_headers
from firewall.proxy.notes import notes_of
from firewall.proxy.oauth import TokenKeeper
from firewall.proxy.refusals import ProxyReason
from firewall.proxy.replay import ReplayFailed, resend
from firewall.proxy.responses import refuse

if TYPE_CHECKING:  # httpx loads with the first retry (upstream_client.py)
    import httpx

log = logging.getLogger("firewall.proxy")
KEY = "firewall.oauth"  # flow.metadata: ((injection, access), ...) the request was sent with
RETRIED = "firewall.oauth.retried"


def remember_oauth(flow: http.HTTPFlow, injections: tuple[Injection, ...], oauth: dict[str, OAuthAccess]) -> None:
    used = tuple((i, oauth[i.credential]) for i in injections if i.kind == "oauth" and i.credential in oauth)
    if used:
        flow.metadata[KEY] = used


def _upgrade(request: http.Request) -> bool:
    return request.headers.get("upgrade", "").lower() == "websocket"


class Reauthorize:
    def __init__(self, keeper: TokenKeeper, client: httpx.AsyncClient):
        self.keeper = keeper
        self.client = client

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response.status_code == 401 and KEY in flow.metadata and not _upgrade(flow.request):
            flow.response.stream = False

    async def response(self, flow: http.HTTPFlow) -> None:
        used = flow.metadata.get(KEY)
        if not used or flow.response is None or flow.response.status_code != 401 or flow.metadata.get(RETRIED):
            return
        flow.metadata[RETRIED] = True
        notes = notes_of(flow)
        # A streamed 401 (a WebSocket upgrade) already went to the client: refresh only, so the
        # client's next attempt carries the new token.
        can_answer = not flow.response.stream and not _upgrade(flow.request)
        fresh: list[OAuthAccess] = []
        try:
            for injection, access in used:
                new = await self.keeper.after_unauthorized(injection, access)
                if new is None:
                    return  # nothing better to send: the agent gets the 401
                fresh.append(new)
        except CredentialUnavailable as exc:
            notes.detail = f"upstream answered 401 and the token could not be refreshed: {exc}"
            if can_answer:
                retry = {"retry-after": str(exc.retry_after)} if exc.retry_after else None
                refuse(flow, Outcome.ERROR, exc.code, str(exc), headers=retry)
            return
        if not can_answer:
            return
        for access in fresh:
            set_oauth_headers(flow.request, access)
        try:
            flow.response = await resend(self.client, flow.request)
        except ReplayFailed as exc:
            refuse(flow, Outcome.ERROR, ProxyReason.UPSTREAM_UNREACHABLE, str(exc))
            return
        flow.metadata[KEY] = tuple((i, a) for (i, _), a in zip(used, fresh))
        notes.detail = "upstream answered 401; the access token was refreshed and the request sent once more"
