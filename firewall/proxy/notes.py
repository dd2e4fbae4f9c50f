"""Per-flow bookkeeping the addons share through `flow.metadata` (mutable by design:
it fills in as the flow moves through the hooks, and the audit addon reads it at the end)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from firewall.policy import Decision

KEY = "firewall"


@dataclass
class FlowNotes:
    request_id: str = field(default_factory=lambda: "req_" + uuid.uuid4().hex[:20])
    started: float = field(default_factory=time.time)
    agent: str | None = None
    decision: Decision | None = None
    outcome: str = ""  # the audit row's `decision`: allow, block, limit, error, would_block, ...
    reason: str = ""
    rule: str | None = None
    detail: str | None = None
    credentials: tuple[str, ...] = ()
    approval_id: str | None = None  # the approval (apr_...) or standing grant (grt_...) that let it through
    bytes_in: int = 0
    scrubbed: bool = False  # an injected secret was masked in the response
    recorded: bool = False

    def refuse(self, outcome: str, reason: str, detail: str | None = None, rule: str | None = None) -> None:
        self.outcome, self.reason, self.detail = outcome, reason, detail
        if rule is not None:
            self.rule = rule


def notes_of(flow) -> FlowNotes:
    notes = flow.metadata.get(KEY)
    if notes is None:
        notes = flow.metadata[KEY] = FlowNotes()
    return notes
