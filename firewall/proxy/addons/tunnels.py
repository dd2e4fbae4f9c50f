"""What a CONNECT tunnel may carry, decided before a byte of it is relayed.

After a CONNECT, mitmproxy asks `next_layer` which protocol the tunnel carries.
This addon answers for every tunnel (master.py keeps mitmproxy's own answer to the
agent's connection to the proxy itself), from the agent's first bytes
(firewall/proxy/first_bytes.py):

- TLS: intercepted, and the requests inside decided one by one; never passed through;
- HTTP: decided request by request (blank lines before the request line are dropped,
  as servers drop them, so the request is read and decided instead of relayed);
- not enough bytes to tell: wait for more;
- anything else: decided as a raw TCP tunnel (`allow tcp` in the host block that names
  the host and port). Refused: the agent's connection is closed, nothing is relayed,
  and the audit row says so. Allowed: relayed by `GuardedTcpLayer`, which stops the
  moment the run's token is revoked or a new policy no longer allows it, and the audit
  row written when it ends counts the bytes each way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from mitmproxy import tcp
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers import ClientTLSLayer, HttpLayer, ServerTLSLayer
from mitmproxy.proxy.layers.http import HTTPMode
from mitmproxy.proxy.layers.tcp import TcpErrorHook, TCPLayer, TcpMessageHook
from mitmproxy.proxy.layers.tls import HTTP_ALPNS
from mitmproxy.proxy.utils import expect

from firewall.policy import Decision, Request, Verdict, decide
from firewall.policy.decision import TUNNEL_METHOD
from firewall.policy.outcomes import Outcome, blocked_outcome
from firewall.proxy.addons.audit import Auditor
from firewall.proxy.addons.identity import Identity
from firewall.proxy.deciding import decide_with_addresses
from firewall.proxy.exfil import carried_secrets
from firewall.proxy.first_bytes import Opening, classify, leading_blank_lines
from firewall.proxy.master import in_tunnel
from firewall.proxy.notes import KEY, FlowNotes, notes_of
from firewall.proxy.refusals import ProxyReason
from firewall.proxy.resolver import Resolver
from firewall.proxy.runtime import Runtime

log = logging.getLogger("firewall.proxy")
TUNNEL_REQUEST = "firewall.tunnel"  # flow.metadata: the `Request` an allowed raw TCP tunnel was decided as


class Tunnels:
    def __init__(self, runtime: Runtime, identity: Identity, resolver: Resolver, auditor: Auditor):
        self.runtime = runtime
        self.identity = identity
        self.resolver = resolver
        self.auditor = auditor

    async def next_layer(self, nextlayer: layer.NextLayer) -> None:
        context = nextlayer.context
        if nextlayer.layer is not None or not in_tunnel(context):
            return  # the agent's connection to the proxy: mitmproxy reads the CONNECT (master.py)
        try:
            nextlayer.layer = await self._layer_for(nextlayer)
        except Exception:  # fail closed: a tunnel we could not decide carries nothing
            log.exception("deciding what a tunnel to %s may carry failed; it was closed", context.server.address)
            nextlayer.layer = RefusedTunnel(context)

    async def _layer_for(self, nextlayer: layer.NextLayer) -> layer.Layer | None:
        context = nextlayer.context
        inside_tls = context.client.tls
        if inside_tls and context.client.alpn in HTTP_ALPNS:
            return HttpLayer(context, HTTPMode.transparent)
        data = nextlayer.data_client()
        opening = classify(data, inside_tls=inside_tls)
        if opening is Opening.MORE:
            return None
        if opening is Opening.TLS:
            server_tls = ServerTLSLayer(context)
            server_tls.child_layer = ClientTLSLayer(context)
            return server_tls
        if opening is Opening.HTTP:
            _drop_blank_lines(nextlayer, leading_blank_lines(data))
            return HttpLayer(context, HTTPMode.transparent)
        return await self._raw_tcp(context)

    async def _raw_tcp(self, context: Context) -> layer.Layer:
        host, port = str(context.server.address[0]), int(context.server.address[1])
        notes = FlowNotes(agent=self.identity.tunnel_agent(context.client))
        if notes.agent is None:  # revoked since the CONNECT
            notes.refuse(
                Outcome.BLOCK, ProxyReason.PROXY_AUTH_REQUIRED, "the agent credentials of this tunnel were revoked"
            )
            self.auditor.record_tunnel(notes, host, port)
            return RefusedTunnel(context)
        request = Request(TUNNEL_METHOD, "tcp", host, port, "", agent=notes.agent)
        request = replace(request, secrets=carried_secrets(self.runtime.secret_index, request, b"", None))
        try:
            decision, addresses = await decide_with_addresses(self.runtime.policy, request, self.resolver, time.time())
        except OSError as exc:
            notes.refuse(Outcome.ERROR, ProxyReason.UNRESOLVABLE, f"{host}: {exc}")
            self.auditor.record_tunnel(notes, host, port)
            return RefusedTunnel(context)
        notes.decision = decision
        notes.rule = decision.rule.id if decision.rule else None
        if decision.verdict is not Verdict.ALLOW:
            notes.refuse(blocked_outcome(decision), decision.reason, decision.message)
            self.auditor.record_tunnel(notes, host, port)
            return RefusedTunnel(context)
        self.resolver.pin(host, port, addresses)
        notes.outcome, notes.reason = Outcome.ALLOW, decision.reason
        relay = GuardedTcpLayer(context)
        relay.flow.metadata[KEY] = notes
        relay.flow.metadata[TUNNEL_REQUEST] = replace(request, addresses=addresses)
        return relay

    # ---- an allowed raw TCP tunnel, while it lasts ----

    def tcp_message(self, flow: tcp.TCPFlow) -> None:
        notes = notes_of(flow)
        why = self._why_stop(flow, notes)
        if why is not None:
            notes.detail = why
            flow.kill()
            return
        message = flow.messages[-1]
        if message.from_client:
            notes.bytes_out += len(message.content)
        else:
            notes.bytes_in += len(message.content)

    def _why_stop(self, flow: tcp.TCPFlow, notes: FlowNotes) -> str | None:
        if self.identity.tunnel_agent(flow.client_conn) != notes.agent:
            return "closed: the agent credentials of this tunnel were revoked (the run ended)"
        policy = self.runtime.policy
        if notes.decision is not None and policy.sha256 != notes.decision.policy_sha256:
            decision: Decision = decide(policy, flow.metadata[TUNNEL_REQUEST], time.time())
            if decision.verdict is not Verdict.ALLOW:
                return f"closed: the policy in force no longer allows it ({decision.reason.value})"
            notes.decision = decision
        return None

    def tcp_end(self, flow: tcp.TCPFlow) -> None:
        self._record(flow)

    def tcp_error(self, flow: tcp.TCPFlow) -> None:
        notes = notes_of(flow)
        if flow.error is not None and not notes.detail:
            notes.detail = flow.error.msg
        self._record(flow)

    def _record(self, flow: tcp.TCPFlow) -> None:
        notes = notes_of(flow)
        if not notes.recorded:
            notes.recorded = True
            host, port = flow.server_conn.address
            self.auditor.record_tunnel(notes, str(host), int(port))


def _drop_blank_lines(nextlayer: layer.NextLayer, count: int) -> None:
    """Remove the first `count` bytes the agent sent (all CR/LF) from what the next layer is handed."""
    kept: list[events.Event] = []
    for event in nextlayer.events:
        if count and isinstance(event, events.DataReceived) and event.connection == nextlayer.context.client:
            cut = min(count, len(event.data))
            count -= cut
            if cut == len(event.data):
                continue
            event = events.DataReceived(event.connection, event.data[cut:])
        kept.append(event)
    nextlayer.events[:] = kept


class RefusedTunnel(layer.Layer):
    """Closes the agent's side of a tunnel the policy refused; nothing is relayed."""

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.Start):
            yield commands.CloseConnection(self.context.client)


class GuardedTcpLayer(TCPLayer):
    """mitmproxy's TCP relay, except that a killed flow stops it (mitmproxy's relays on: a kill
    does not reach a flow in transit, mitmproxy issue 4711), and that messages are not kept
    (a long tunnel would hold every byte it carried)."""

    @expect(events.DataReceived, events.ConnectionClosed, events.MessageInjected)
    def relay_messages(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.MessageInjected):
            return  # nothing of ours injects; anything else is not relayed unchecked
        if isinstance(event, events.ConnectionClosed):
            yield from super().relay_messages(event)
            return
        from_client = event.connection == self.context.client
        self.flow.messages.append(tcp.TCPMessage(from_client, event.data))
        yield TcpMessageHook(self.flow)
        message = self.flow.messages.pop()
        self.flow.messages.clear()
        if not self.flow.live:  # killed by the hook
            self._handle_event = self.done
            yield commands.CloseConnection(self.context.server)
            yield commands.CloseConnection(self.context.client)
            yield TcpErrorHook(self.flow)
            return
        yield commands.SendData(self.context.server if from_client else self.context.client, message.content)
