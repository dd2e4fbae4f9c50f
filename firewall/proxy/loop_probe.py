"""An event-loop lag probe, for finding what blocks the proxy's loop (off unless asked for).

`FIREWALL_LOOP_PROBE=1 firewall proxy start ...`: a callback scheduled every 5 ms notes how
late it runs (the time the loop spent on something else without yielding), and gc.callbacks
time every garbage-collection pass. When the proxy stops, one log line sums both up: where a
tail of slow requests comes from (a full collection, a synchronous call in a hook) shows as
lateness, and the gc figures say whether collections account for it (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import gc
import os
import time

ENV = "FIREWALL_LOOP_PROBE"
INTERVAL = 0.005


def wanted() -> bool:
    return bool(os.environ.get(ENV))


class LoopProbe:
    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = INTERVAL) -> None:
        self.loop = loop
        self.interval = interval
        self.lateness: list[float] = []
        self.gc_passes: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.gc_cpu: dict[int, list[float]] = {0: [], 1: [], 2: []}  # the pass's own CPU time
        self._gc_started = 0.0
        self._gc_cpu_started = 0.0
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        gc.callbacks.append(self._gc)
        self._due = time.monotonic() + self.interval
        self._handle = self.loop.call_later(self.interval, self._tick)

    def stop(self) -> str:
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        if self._handle is not None:
            self._handle.cancel()
        return self.summary()

    def _tick(self) -> None:
        now = time.monotonic()
        self.lateness.append(now - self._due)
        self._due = now + self.interval
        self._handle = self.loop.call_later(self.interval, self._tick)

    def _gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            self._gc_cpu_started = time.thread_time()
        else:
            self.gc_passes[info["generation"]].append(time.perf_counter() - self._gc_started)
            self.gc_cpu[info["generation"]].append(time.thread_time() - self._gc_cpu_started)

    def summary(self) -> str:
        late = sorted(self.lateness)
        if not late:
            return "loop probe: no samples"

        def pct(q: float) -> float:
            return late[min(len(late) - 1, int(q * len(late)))] * 1000

        over = {ms: sum(1 for x in late if x * 1000 > ms) for ms in (5, 10, 20, 50)}
        # Wall time, and the pass's CPU time: on a loaded machine a pass descheduled midway
        # counts in full in the first, not in the second.
        gcs = ", ".join(
            f"gen{gen} {len(times)} passes, total {sum(times) * 1000:.0f} ms, "
            f"max {max(times, default=0) * 1000:.1f} ms (CPU max {max(self.gc_cpu[gen], default=0) * 1000:.1f} ms)"
            for gen, times in self.gc_passes.items()
        )
        return (
            f"loop probe: {len(late)} samples every {self.interval * 1000:.0f} ms; lateness p50 {pct(0.5):.2f} ms, "
            f"p99 {pct(0.99):.2f} ms, max {late[-1] * 1000:.1f} ms; over 5/10/20/50 ms: "
            f"{over[5]}/{over[10]}/{over[20]}/{over[50]}; gc: {gcs}"
        )
