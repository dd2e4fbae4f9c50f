"""The proxy's side of approvals: hold a request until a person answers, without blocking the loop.

`hold()` records the request as pending and awaits a future; one poller task
looks up the rows of every held request every `poll_interval` seconds and
resolves their futures (approved, denied, expired, or abandoned when the agent
disconnected). Every database call runs on one worker thread with its own
connection, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from firewall.approvals import grants, preview, store
from firewall.approvals.records import APPROVED, CANCELLED, DENIED, EXPIRED, PENDING, Approval, Grant, HeldRequest
from firewall.state.db import open_plain

log = logging.getLogger("firewall.proxy")

POLL_INTERVAL = 0.15  # seconds between looks at the held rows: an answer arrives within ~0.2 s
ABANDONED = "abandoned"  # the agent disconnected while its request was held
USED = "used"  # approved, but an identical retry used the approval first


@dataclass(frozen=True)
class HoldEnd:
    """How a held request ended. `approval_id` names the row (or grant) that decided it."""

    state: str  # approved | denied | expired | cancelled | abandoned | used
    approval_id: str | None
    detail: str

    @property
    def approved(self) -> bool:
        return self.state == APPROVED


def held_request(
    *,
    request_id: str,
    request: preview.BoundRequest,
    content_type: str | None,
    rule: str,
    rule_text: str,
    reason: str | None,
    policy_sha256: str,
    timeout: float,
    redact: Callable[[str], str],
) -> HeldRequest:
    """The row a held request becomes: masked URL, body preview, fingerprint."""
    return HeldRequest(
        request_id=request_id,
        agent=request.agent,
        method=request.method,
        url=preview.display_url(request.scheme, request.host, request.port, request.path, request.query, redact),
        rule=rule,
        rule_text=rule_text,
        reason=reason,
        preview=preview.body_preview(request.body, content_type, redact),
        body_size=len(request.body),
        fingerprint=preview.fingerprint(request),
        policy_sha256=policy_sha256,
        timeout=timeout,
    )


@dataclass
class _Waiter:
    approval_id: str
    request_id: str
    expires: float
    gone: Callable[[], bool]
    future: asyncio.Future


class ApprovalBroker:
    """Holds requests for approval inside one proxy process. Use from the event loop."""

    def __init__(
        self,
        database: Path,
        *,
        poll_interval: float = POLL_INTERVAL,
        clock: Callable[[], float] = time.time,
        proxy_pid: int | None = None,
    ):
        self.database = database
        self.poll_interval = poll_interval
        self.clock = clock
        self.proxy_pid = proxy_pid if proxy_pid is not None else os.getpid()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="firewall-approvals")
        self._conn = None  # opened on the worker thread, used only there
        self._waiters: dict[str, _Waiter] = {}
        self._poller: asyncio.Task | None = None
        self._closing = False

    # ---- life cycle ----

    async def start(self) -> None:
        """Expire what crashed proxies left pending, then start polling."""
        expired = await self._db(store.expire_stale, self.clock())
        if expired:
            log.info("expired %d approval request(s) left pending by a proxy that is gone", expired)
        self._poller = asyncio.get_running_loop().create_task(self._poll(), name="firewall approvals poller")

    async def close(self, detail: str = "the proxy stopped") -> int:
        """Answer every held request `cancelled` (the proxy stops); returns how many there were."""
        if self._closing:
            return 0
        self._closing = True
        if self._poller is not None:
            self._poller.cancel()
        waiters = list(self._waiters.values())
        try:
            await self._db(store.cancel, self.proxy_pid, self.clock(), detail)
        except Exception:
            log.exception("marking held approval requests cancelled failed")
        for waiter in waiters:
            _resolve(waiter, HoldEnd(CANCELLED, waiter.approval_id, detail))
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_connection)
        self._executor.shutdown(wait=False)
        return len(waiters)

    # ---- used by the Enforcer ----

    async def describe(self, **request) -> HeldRequest:
        """`held_request(**request)` on the worker thread: hashing a large body never stalls the loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: held_request(**request))

    async def grant_for(self, agent: str, rule: str, rule_text: str, named: bool = False) -> Grant | None:
        """A live standing grant of this rule to this agent, if any (`named`: see grants.matching_grant)."""
        return await self._db(grants.matching_grant, agent, rule, rule_text, self.clock(), named)

    async def hold(self, held: HeldRequest, gone: Callable[[], bool]) -> HoldEnd:
        """Wait for a person's answer. `gone()` says whether the agent has disconnected."""
        if self._closing:
            return HoldEnd(CANCELLED, None, "the proxy is stopping")
        reused, row = await self._db(self._open, held, self.clock())
        if reused:
            return HoldEnd(APPROVED, row.id, f"an identical request was approved by {row.decided_by}")
        waiter = _Waiter(row.id, held.request_id, row.expires, gone, asyncio.get_running_loop().create_future())
        self._waiters[row.id] = waiter
        if self._closing:  # close() ran while the row was being written
            _resolve(waiter, HoldEnd(CANCELLED, row.id, "the proxy is stopping"))
        try:
            return await waiter.future
        finally:
            self._waiters.pop(row.id, None)

    # ---- the poller ----

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            if not self._waiters:
                continue
            waiters = list(self._waiters.values())
            gone = {w.approval_id for w in waiters if w.gone()}
            claims = {w.approval_id: w.request_id for w in waiters}
            now = self.clock()
            try:
                outcomes = await self._db(self._check, claims, gone, now)
            except Exception:
                log.exception("looking up held approval requests failed; trying again")
                for waiter in waiters:  # fail closed: nobody can answer what cannot be read
                    if now >= waiter.expires:
                        _resolve(
                            waiter, HoldEnd(EXPIRED, waiter.approval_id, "the approval database could not be read")
                        )
                continue
            for waiter in waiters:
                outcome = outcomes.get(waiter.approval_id)
                if outcome is not None:
                    _resolve(waiter, outcome)

    # ---- on the worker thread ----

    def _db(self, function, *args):
        return asyncio.get_running_loop().run_in_executor(self._executor, self._call, function, args)

    def _call(self, function, args):
        if self._conn is None:
            self._conn = open_plain(self.database)  # no sqlite_utils in the proxy: store.py uses execute()
        return function(self._conn, *args)

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _open(self, db, held: HeldRequest, now: float) -> tuple[bool, Approval]:
        """(True, row) for an unused approval of an identical earlier request; else (False, row)
        of the pending row to wait on: an abandoned identical one, or a new one."""
        reused = store.claim_retry(db, held, now)
        if reused is not None:
            return True, reused
        row = store.adopt_abandoned(db, held, now, self.proxy_pid)
        return False, row or store.record_pending(db, held, now, self.proxy_pid)

    def _check(self, db, claims: dict[str, str], gone: set[str], now: float) -> dict[str, HoldEnd]:
        outcomes = {}
        for approval_id, row in store.get_many(db, claims).items():
            if approval_id in gone and row.state in (PENDING, APPROVED):
                # Left pending (or approved and unused): an identical retry may still use it.
                store.release(db, approval_id)
                outcomes[approval_id] = HoldEnd(ABANDONED, approval_id, "the agent disconnected while waiting")
                continue
            if row.state == PENDING and row.expires <= now:
                if store.expire(db, approval_id, now):
                    outcomes[approval_id] = HoldEnd(EXPIRED, approval_id, f"no answer within {row.timeout:g}s")
                    continue
                row = store.get(db, approval_id)
            outcome = _settled(db, row, claims[approval_id], now)
            if outcome is not None:
                outcomes[approval_id] = outcome
        return outcomes


def _settled(db, row: Approval, request_id: str, now: float) -> HoldEnd | None:
    """The outcome of a decided row for the request waiting on it; None while it is pending."""
    if row.state == APPROVED:
        if store.claim(db, row.id, request_id, now):
            return HoldEnd(APPROVED, row.id, f"approved by {row.decided_by}")
        return HoldEnd(USED, row.id, "an identical request used this approval first")
    if row.state == DENIED:
        return HoldEnd(DENIED, row.id, f"denied by {row.decided_by}")
    if row.state in (EXPIRED, CANCELLED):
        return HoldEnd(row.state, row.id, row.detail or row.state)
    return None


def _resolve(waiter: _Waiter, outcome: HoldEnd) -> None:
    if not waiter.future.done():
        waiter.future.set_result(outcome)
