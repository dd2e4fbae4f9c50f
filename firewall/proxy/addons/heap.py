"""Garbage collection in the proxy: keep full collections off the request path.

A full collection walks every object the collector tracks and stops the event loop meanwhile:
every request in flight waits for it. Two sources of objects made those passes long:

- start-up: mitmproxy, the firewall's modules, the policy, the vault; frozen once the proxy
  listens (`gc.freeze()`: moved out of the collector's sight for good);
- warm-up: what the first requests create and keep (modules imported on first use, the leaf
  certificate cache, TLS contexts, the resolver's and the scrubber's caches: about 110,000
  objects after the first thousand requests); frozen once, at the first moment after WARM_FLOWS
  flows when no agent connection is open, from a collection run first.

Nothing unreachable is frozen (a full collection runs first), and nothing of a connection
either (none is open): what is frozen is what the proxy keeps. A frozen object dropped later
is still freed by reference counting, unless it is part of a cycle; so the heap is frozen
twice, never periodically (a periodic freeze would keep every later cycle for good). A proxy
that never has a moment without a connection keeps only the start-up freeze.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("firewall.proxy")

WARM_FLOWS = 1000


class Heap:
    def __init__(self, warm_flows: int = WARM_FLOWS) -> None:
        self.warm_flows = warm_flows
        self.flows = 0
        self.connections = 0
        self.warm_frozen = False

    def running(self) -> None:
        gc.collect()
        gc.freeze()

    def response(self, flow) -> None:
        self.flows += 1

    def error(self, flow) -> None:
        self.flows += 1

    def client_connected(self, client) -> None:
        self.connections += 1

    def client_disconnected(self, client) -> None:
        self.connections -= 1
        if self.connections <= 0 and self.flows >= self.warm_flows and not self.warm_frozen:
            self.warm_frozen = True
            gc.collect()
            gc.freeze()
            log.info(
                "gc: froze the warmed-up heap after %d flows (%d objects frozen)", self.flows, gc.get_freeze_count()
            )
