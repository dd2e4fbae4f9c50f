"""Freeing closed connections soon: a full garbage collection after every COLLECT_AFTER agent
connections closed, at a moment no request is in flight.

mitmproxy's layers and their context refer to each other, so a closed connection is freed by the
cycle collector, not when its last reference goes. A connection that lived through a few young
collections is in the oldest generation, which Python collects only after some hundred thousand
allocations; until then it keeps its two TLS connections (OpenSSL's state and buffers). Python
counts objects, not the C memory they hold, so that garbage piled up: after three rounds of the
scorecard's load, 148 TLS connections of closed agent connections were waiting, and each round's
64 connections were allocated beside the last round's (peak RSS 90.7 MiB; 82 MiB with this
addon, docs/performance.md, "Lean and quick"). A pass walks only what start-up did not freeze
(server.py); one took 21-37 ms of CPU at load 10, most of it freeing garbage that a later pass
would have had to free anyway. It runs when an agent connection closes and no request waits for
an answer, so no request in flight is held up by it (a connection opened meanwhile waits).
"""

from __future__ import annotations

import gc
from collections.abc import Callable

COLLECT_AFTER = 32  # agent connections closed between full collections, at most (unless never idle)


class Collector:
    def __init__(self, busy: Callable[[], bool], every: int = COLLECT_AFTER) -> None:
        self.busy = busy  # whether a request is in flight (addons/drain.py)
        self.every = every
        self.closed = 0  # agent connections closed since the last collection
        self.collections = 0

    def client_disconnected(self, client: object) -> None:
        self.closed += 1
        if self.closed >= self.every and not self.busy():
            self.closed = 0
            self.collections += 1
            gc.collect()
