"""Which agent sent this request: proxy credentials `agent:token`, checked against hashed tokens.

Credentials given on CONNECT hold for every request in that tunnel. No valid
credentials → 407, and the request goes nowhere. The Proxy-Authorization
header never travels upstream.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import weakref

from mitmproxy import http

from firewall.policy.outcomes import Outcome
from firewall.proxy.notes import notes_of
from firewall.proxy.refusals import ProxyReason
from firewall.proxy.responses import refuse
from firewall.proxy.runtime import Runtime
from firewall.state.agents import token_hash

HEADER = "Proxy-Authorization"


def parse_basic(value: str) -> tuple[str, str] | None:
    """(user, password) from a `Basic …` header value, or None."""
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class Identity:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        # client conn -> (agent, token hash): a tunnel outlives no token; see requestheaders
        self.tunnels: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def tunnel_agent(self, client) -> str | None:
        """The agent a client connection's CONNECT authenticated, while its token is live."""
        tunnel = self.tunnels.get(client)
        if tunnel is None or self.runtime.agent_for_token_hash(tunnel[1]) != tunnel[0]:
            return None
        return tunnel[0]

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        agent = await self._authenticate(flow)
        if agent is not None:
            self.tunnels[flow.client_conn] = (agent, notes_of(flow).token_hash)

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error:
            return
        tunnel = self.tunnels.get(flow.client_conn)
        if tunnel is not None:
            agent, digest = tunnel
            flow.request.headers.pop(HEADER, None)
            if self.runtime.agent_for_token_hash(digest) != agent:
                # Revoked since the CONNECT (its run ended): a process the agent left behind
                # keeps no way out through a tunnel it opened earlier.
                self._refuse(flow, "the agent credentials of this tunnel were revoked (the run ended)")
                return
            notes = notes_of(flow)
            notes.agent, notes.token_hash = agent, digest
            return
        await self._authenticate(flow)

    async def _authenticate(self, flow: http.HTTPFlow) -> str | None:
        notes = notes_of(flow)
        credentials = parse_basic(flow.request.headers.get(HEADER, ""))
        flow.request.headers.pop(HEADER, None)
        if credentials is None:
            return self._refuse(flow, "this proxy needs agent credentials; start the agent with `firewall run`")
        user, token = credentials
        agent = self.runtime.agent_for_token_hash(token_hash(token))
        if agent is None:
            agent = await asyncio.get_running_loop().run_in_executor(None, self.runtime.lookup_token_now, token)
        if agent is None or agent != user:
            return self._refuse(flow, "the agent credentials are not valid (unknown, revoked or for another agent)")
        notes.agent, notes.token_hash = agent, token_hash(token)
        return agent

    @staticmethod
    def _refuse(flow: http.HTTPFlow, message: str) -> None:
        refuse(flow, Outcome.BLOCK, ProxyReason.PROXY_AUTH_REQUIRED, message)
        return None
