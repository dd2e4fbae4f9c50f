"""AuditGate: past the audit backlog's bound a new request is refused with 503 audit_unavailable,
unless `--audit-full-action allow`. Control: a writer within its bound lets every request by."""

from __future__ import annotations

import json

import pytest
from mitmproxy.test import tflow

from firewall.proxy.addons.audit_gate import AuditGate
from firewall.proxy.notes import notes_of


class Writer:
    def __init__(self, why: str | None, unwritten: int = 0) -> None:
        self.why = why
        self.unwritten = unwritten

    def unavailable(self) -> str | None:
        return self.why


FULL = "audit rows have waited 5.2 s to be written (the bound is 5 s): database or disk is full"


@pytest.mark.parametrize(
    ("why", "action", "refused"),
    [
        (None, "refuse", False),  # control: within the bound
        (FULL, "refuse", True),
        (FULL, "allow", False),  # auditd's disk_full_action = ignore, asked for
        (None, "allow", False),
    ],
)
def test_the_gate_refuses_past_the_bound_unless_allowed(why, action, refused):
    problems: list = []
    gate = AuditGate(Writer(why), action, on_problem=lambda what, message: problems.append((what, message)))
    flow = tflow.tflow()
    flow.response = None
    gate.requestheaders(flow)
    assert (flow.response is not None) is refused
    if refused:
        body = json.loads(flow.response.content)
        assert flow.response.status_code == 503 and body["error"]["type"] == "audit_unavailable"
        assert notes_of(flow).reason == "audit_unavailable" and notes_of(flow).detail == FULL
        assert problems and problems[0][0] == "writing the audit log"


def test_lost_rows_are_reported_for_proxy_status():
    problems: list = []
    gate = AuditGate(
        Writer(None, unwritten=7), "allow", on_problem=lambda what, message: problems.append((what, message))
    )
    gate._check(None)
    gate._check(None)  # said once per new count
    assert problems == [("audit rows lost", "7 audit row(s) were not written and are lost")]


def test_an_unknown_action_is_refused_at_start():
    with pytest.raises(ValueError, match="--audit-full-action is one of refuse, allow"):
        AuditGate(Writer(None), "ignore")
