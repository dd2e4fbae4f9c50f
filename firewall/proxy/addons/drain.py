"""A clean stop drains, the way Envoy drains a listener: stop accepting, let what is in flight
finish within a grace period, then cut the rest, each with its audit row.

1. The listening sockets close: a new connection is refused by the kernel, not lost.
2. A request that arrives on a connection already open is answered at once with
   `503 proxy_stopping` (and `connection: close` in HTTP/1), and gets its row like any refusal.
3. Requests in flight have `grace` seconds to finish. Whatever is still in flight then is
   cut: its row is written first, with `cut_at_stop` in its detail, then every connection
   is closed. A second SIGTERM or Ctrl-C cuts at once.
4. Only then does mitmproxy stop, and the audit writer closes after it (server.py), so no
   request that reached an upstream is left without a row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from mitmproxy import ctx, http

from firewall.policy.outcomes import Outcome
from firewall.proxy.notes import notes_of
from firewall.proxy.refusals import ProxyReason
from firewall.proxy.responses import refuse

log = logging.getLogger("firewall.proxy")

CLOSE_WAIT = 3.0  # seconds, at most, for mitmproxy to close the connections it was told to close
CUT_AT_STOP = "cut_at_stop"  # leads the audit detail of a request cut at a stop


class Drain:
    """Keeps the requests in flight, and stops the proxy without losing one of their rows."""

    def __init__(self, record: Callable[[http.HTTPFlow], None]) -> None:
        self.record = record  # writes a flow's audit row now (Auditor.record_now)
        self.in_flight: dict[str, http.HTTPFlow] = {}
        self.draining = False
        self._cut_now = asyncio.Event()
        self.figures = {"drained": 0, "cut": 0, "refused": 0}

    # ---- hooks (after Identity and AuditGate in the chain: a refusal here names the agent) ----

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if self.draining and flow.response is None:
            refuse(flow, Outcome.ERROR, ProxyReason.PROXY_STOPPING, "the proxy was stopping; the request was not sent")
            if not flow.request.http_version.startswith("HTTP/2"):  # no connection header in HTTP/2
                flow.response.headers["connection"] = "close"
            self.figures["refused"] += 1
            return
        if flow.response is None:  # not refused by an addon before this one
            self.in_flight[flow.id] = flow

    def response(self, flow: http.HTTPFlow) -> None:
        self._done(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._done(flow)

    def _done(self, flow: http.HTTPFlow) -> None:
        if self.in_flight.pop(flow.id, None) is not None and self.draining:
            self.figures["drained"] += 1

    # ---- the stop ----

    def cut_now(self) -> None:
        """A second stop signal: end the grace period at once."""
        self._cut_now.set()

    async def drain(self, grace: float) -> dict[str, int]:
        """Stop accepting, wait up to `grace` seconds for the requests in flight, cut the rest."""
        self.draining = True
        proxyserver = ctx.master.addons.get("proxyserver")
        await proxyserver.servers.update([])  # close the listening sockets
        waiting = self._waiting()
        log.info("stopping: %d request(s) in flight get %.1f s to finish", len(waiting), grace)
        deadline = time.monotonic() + grace
        while self._waiting() and not self._cut_now.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(self._cut_now.wait(), timeout=min(0.05, left))
            except TimeoutError:
                pass
        for flow in self._waiting():
            self.in_flight.pop(flow.id, None)
            notes = notes_of(flow)
            cut = f"{CUT_AT_STOP}: the proxy stopped before this request finished ({grace:g} s grace)"
            notes.detail = f"{cut}; {notes.detail}" if notes.detail else cut
            self.record(flow)
            self.figures["cut"] += 1
        self._close_connections(proxyserver)
        deadline = time.monotonic() + CLOSE_WAIT
        while proxyserver.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        log.info(
            "stopped: %(drained)d request(s) finished within the grace, %(cut)d cut, "
            "%(refused)d refused while stopping",
            self.figures,
        )
        return dict(self.figures)

    def _waiting(self) -> list[http.HTTPFlow]:
        return [flow for flow in self.in_flight.values() if not notes_of(flow).recorded]

    @staticmethod
    def _close_connections(proxyserver) -> None:
        """Cancel each client connection's handler: mitmproxy then closes it and its upstream."""
        for handler in list(proxyserver.connections.values()):
            io = handler.transports.get(handler.client)
            if io is not None and io.handler is not None:
                io.handler.cancel("the proxy stopped")
