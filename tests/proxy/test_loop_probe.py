"""The event-loop lag probe (a diagnosis tool): it samples, counts gc passes, and leaves no hook behind."""

from __future__ import annotations

import asyncio
import gc

from firewall.proxy.loop_probe import LoopProbe


def test_the_probe_samples_the_loop_and_counts_collections():
    async def main() -> str:
        probe = LoopProbe(asyncio.get_running_loop(), interval=0.001)
        probe.start()
        for _ in range(5):
            await asyncio.sleep(0.005)
        gc.collect()  # one full pass, seen through gc.callbacks
        await asyncio.sleep(0.005)
        summary = probe.stop()
        assert probe._gc not in gc.callbacks
        assert len(probe.gc_passes[2]) >= 1
        assert probe.lateness
        return summary

    summary = asyncio.run(main())
    assert summary.startswith("loop probe: ")
    assert "gen2 " in summary


def test_control_a_probe_never_started_says_so():
    probe = LoopProbe(asyncio.new_event_loop())
    assert probe.summary() == "loop probe: no samples"
    probe.loop.close()
