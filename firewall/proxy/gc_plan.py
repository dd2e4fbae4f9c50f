"""When the proxy's garbage collector walks its whole heap (a full, generation-2 pass).

A pass runs on the event loop: every request in flight waits for it. Once the proxy listens,
`gc.collect(); gc.freeze()` moves what start-up made (mitmproxy, the policy, the vault's index)
out of the collector's sight for good, so later passes walk only what requests made.

`deferred` (diagnosis, `FIREWALL_GC_PLAN=deferred[:N]`, bench/gc_tail.py): no automatic full
passes; a timer runs one once N young (generation-1) passes have happened since the last
(CPython's own trigger is 10), at a moment no request is in flight, or at the latest
MAX_WAIT seconds after it fell due.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable

ENV = "FIREWALL_GC_PLAN"
CHECK_EVERY = 0.25  # seconds between two looks at whether a full pass is due
MAX_WAIT = 5.0  # seconds a due full pass waits for a moment with no request in flight
NEVER = 1_000_000_000  # a generation-2 threshold no count reaches


def freeze_start_up() -> None:
    gc.collect()
    gc.freeze()


class DeferredFullPasses:
    def __init__(self, loop: asyncio.AbstractEventLoop, busy: Callable[[], bool], due_after: int = 10) -> None:
        self.loop = loop
        self.busy = busy  # whether a request is in flight
        self.due_after = due_after
        self.due_since: float | None = None
        self.passes = 0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, NEVER)
        self._handle = self.loop.call_later(CHECK_EVERY, self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _check(self) -> None:
        if gc.get_count()[2] >= self.due_after:
            now = self.loop.time()
            if self.due_since is None:
                self.due_since = now
            if not self.busy() or now - self.due_since >= MAX_WAIT:
                gc.collect(2)
                self.passes += 1
                self.due_since = None
        self._handle = self.loop.call_later(CHECK_EVERY, self._check)


def plan_from_env(loop: asyncio.AbstractEventLoop, busy: Callable[[], bool]) -> DeferredFullPasses | None:
    """The plan a benchmark asked for; None: CPython's own full passes (the default)."""
    name, _, count = os.environ.get(ENV, "").partition(":")
    if name != "deferred":
        return None
    return DeferredFullPasses(loop, busy, int(count) if count else 10)
