"""Refusing new requests while the audit log cannot take their rows (a full disk, a write lock
held by another process), like auditd's `disk_full_action`.

The audit writer bounds what waits in memory (firewall/audit/batching.py: rows and seconds).
Past the bound, a new request is answered at once with `503 audit_unavailable`, before it is
decided or sent anywhere: no request goes out that the log cannot record. With
`--audit-full-action allow` requests go on instead, and rows past the hard bound are lost and
counted. Either way the condition is said once in the log and in `proxy status`, and rows
lost are counted there and in `proxy stop`'s output.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from mitmproxy import http

from firewall.policy.outcomes import Outcome
from firewall.proxy.outages import Outage
from firewall.proxy.refusals import ProxyReason
from firewall.proxy.responses import refuse

log = logging.getLogger("firewall.proxy")

ACTIONS = ("refuse", "allow")
CHECK_EVERY = 0.5  # seconds between checks of the writer for `proxy status`, when no request comes
LOST = "audit rows lost"


class AuditGate:
    def __init__(self, writer, action: str = "refuse", on_problem: Callable[[str, str | None], None] | None = None):
        if action not in ACTIONS:
            raise ValueError(f"--audit-full-action is one of {', '.join(ACTIONS)}, not {action!r}")
        self.writer = writer
        self.action = action
        self.on_problem = on_problem
        self.outage = Outage(log, "writing the audit log", on_change=on_problem)
        self.refused = 0
        self._lost_said = 0
        self._task: asyncio.Task | None = None

    def running(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._gate(flow)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._gate(flow)

    def _gate(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or self.action == "allow":
            return
        why = self.writer.unavailable()
        if why is None:
            return
        self._check(why)
        refuse(flow, Outcome.ERROR, ProxyReason.AUDIT_UNAVAILABLE, why)
        self.refused += 1

    async def _watch(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                self._check(self.writer.unavailable())
                await asyncio.sleep(CHECK_EVERY)

    def _check(self, why: str | None) -> None:
        """Say when the log stops or starts taking rows again, and how many rows were lost."""
        if why is None:
            self.outage.ok()
        else:
            consequence = (
                "new requests are refused with 503 audit_unavailable until rows are written again"
                if self.action == "refuse"
                else "requests go on (--audit-full-action allow); rows past the bound are lost"
            )
            self.outage.failed(why, consequence=consequence)
        lost = self.writer.unwritten
        if lost != self._lost_said:
            self._lost_said = lost
            log.error("%d audit row(s) lost so far", lost)
            if self.on_problem:
                self.on_problem(LOST, f"{lost} audit row(s) were not written and are lost")
