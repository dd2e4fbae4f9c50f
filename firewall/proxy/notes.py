"""Per-flow bookkeeping the addons share through `flow.metadata` (mutable by design:
it fills in as the flow moves through the hooks, and the audit addon reads it at the end)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from firewall.policy import Decision, Request
from firewall.policy.outcomes import Outcome

KEY = "firewall"
_ID_CHARS = 20  # hex digits of randomness in a request id
_ID_BATCH = 256  # ids per read of the OS's random source (one syscall instead of one per request)
_ids: list[str] = []
os.register_at_fork(after_in_child=_ids.clear)  # a forked child must not reuse the parent's ids


def new_request_id() -> str:
    """`req_` and 20 random hex digits (80 bits from os.urandom)."""
    if not _ids:
        pool = os.urandom(_ID_CHARS // 2 * _ID_BATCH).hex()
        _ids.extend(pool[i : i + _ID_CHARS] for i in range(0, len(pool), _ID_CHARS))
    return "req_" + _ids.pop()


@dataclass
class FlowNotes:
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.time)
    agent: str | None = None
    token_hash: str | None = None  # of the proxy credentials that identified the agent
    decision: Decision | None = None
    request: Request | None = None  # a WebSocket upgrade as decided, with its addresses (ws_budgets.py)
    outcome: Outcome | None = None  # the audit row's `decision`
    reason: str = ""  # the engine's Reason or a ProxyReason (refusals.py)
    rule: str | None = None
    detail: str | None = None
    credentials: tuple[str, ...] = ()
    approval_id: str | None = None  # the approval (apr_...) or standing grant (grt_...) that let it through
    bytes_in: int = 0  # set where the response body is not what counts (a streamed answer, a TCP tunnel)
    bytes_out: int = 0  # a raw TCP tunnel's bytes from the agent
    scrubbed: bool = False  # an injected secret was masked in the response
    budget_hold: object | None = None  # budget_store.Hold: the request counts against budgets
    strip_usage: bool = False  # the proxy asked for a streamed chat's usage: take it back out
    input_tokens: int | None = None  # what the answer used, as counted (audit columns)
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    model: str | None = None
    fields: dict | None = None  # the request fields its host block's conditions read (audit column `fields`)
    recorded: bool = False

    def refuse(self, outcome: Outcome, reason: str, detail: str | None = None, rule: str | None = None) -> None:
        self.outcome, self.reason, self.detail = outcome, reason, detail
        if rule is not None:
            self.rule = rule


def notes_of(flow) -> FlowNotes:
    notes = flow.metadata.get(KEY)
    if notes is None:
        notes = flow.metadata[KEY] = FlowNotes()
    return notes
