"""What the proxy's budgets have used, published for `firewall budgets` (docs/budgets.md).

With `memory://` the counters live only in this process (or, for a proxy of several workers,
in its supervisor's count service, which worker 0 reads: firewall/proxy/counts.py), so the
proxy writes them out:
`run/proxy.budgets.json` next to its state file (owner-only, whole and atomically), at
most once a second and only when something changed: a count, the policy in force, or a
window that ended. It holds the budgets of the policy in force (rule, location, measure,
period, scope, limit) and, under `memory://`, every counter of the current windows. Under
`redis://` the counters live in the store, which `firewall budgets` reads itself, exactly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from firewall.proxy.budget_store import BudgetStore
from firewall.proxy.limiter import LimitsUnavailable
from firewall.state.home import write_private_file

if TYPE_CHECKING:
    from firewall.proxy.runtime import Runtime

log = logging.getLogger("firewall.proxy")
INTERVAL = 1.0  # seconds between looks at the counters: the figures are at most this old (plus the write)


def snapshot_path(state_file: Path) -> Path:
    return state_file.with_name(f"{state_file.stem}.budgets.json")


class BudgetSnapshot:
    def __init__(
        self, path: Path, runtime: Runtime, store: BudgetStore, limits_storage: str, pid: int | None = None
    ) -> None:
        self.path = path
        self.pid = pid or os.getpid()  # the proxy `proxy status` names: a worker's supervisor
        self.runtime = runtime
        self.store = store
        self.limits_storage = limits_storage
        self._last: bytes | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.path.unlink(missing_ok=True)

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self.publish(time.time())
            except (OSError, LimitsUnavailable) as exc:  # a full disk, the count service gone: figures go stale
                if not failing:
                    log.warning("could not write %s for `firewall budgets` (its figures go stale): %s", self.path, exc)
                failing = True
            else:
                if failing:
                    log.info("%s is written again", self.path)
                failing = False
            await asyncio.sleep(INTERVAL)

    async def publish(self, now: float) -> None:
        data = self.data(now, await self.store.counters(now))
        body = json.dumps(data, sort_keys=True).encode()
        if body == self._last:
            return
        stamped = json.dumps({**data, "written_at": now}, sort_keys=True).encode()
        await asyncio.to_thread(write_private_file, self.path, stamped)
        self._last = body

    def data(self, now: float, counted: list[tuple[tuple[str, str, str], int, float]]) -> dict:
        live = self.runtime.live
        policy = live.policy
        budgets = [
            {
                "key": b.key,
                "rule": b.source.text,
                "id": b.source.id,
                "location": b.source.location,
                "host": " ".join(block.patterns),
                "measure": b.measure,
                "period": b.period,
                "per_agent": b.per_agent,
                "limit": b.amount,
            }
            for block in policy.blocks
            for b in block.budgets
        ]
        counters = [
            {"key": key, "agent": agent, "window": window, "used": used, "resets_at": end}
            for (key, agent, window), used, end in counted
        ]
        return {
            "pid": self.pid,
            "policy_version": live.version,
            "policy_sha256": policy.sha256,
            "limits_storage": self.limits_storage,
            "budgets": budgets,
            "counters": counters if self.store.in_memory else None,
        }
