"""One audit row per request, handed to the batched writer when the flow ends.

Runs last, so it sees what every other addon decided. Refused CONNECTs and
tunnels that do not carry HTTP(S) (refused, or relayed under `allow tcp`) get a
row too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from mitmproxy import http

from firewall.audit import AuditRecord, ProcessAuditWriter
from firewall.policy.decision import TUNNEL_METHOD
from firewall.proxy.notes import FlowNotes, notes_of
from firewall.proxy.runtime import Runtime
from firewall.redact import mask_query, scrub

log = logging.getLogger("firewall.proxy")

# Outcomes whose request went upstream: their response status is the upstream's.
FORWARDED = frozenset({"allow", "approve", "would_block", "would_limit", "would_approve"})


class CountingWriter:
    """Benchmarks only (`firewall proxy start --audit off`, bench/audit_log.py): stands in for
    the ProcessAuditWriter, counting the records it is handed and writing none, so the cost of the
    audit log can be measured as the difference. Never used unless asked for."""

    def __init__(self) -> None:
        self.written = 0  # records received (none written), named as the writers' count

    def submit(self, record: AuditRecord) -> None:
        self.written += 1

    def close(self) -> None:
        pass


class Auditor:
    def __init__(self, runtime: Runtime, writer: ProcessAuditWriter | CountingWriter):
        self.runtime = runtime
        self.writer = writer

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None and flow.response.status_code >= 300:
            self._record(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def record_tunnel(self, notes: FlowNotes, host: str, port: int) -> None:
        """The row of a CONNECT tunnel that did not carry HTTP(S): refused, or relayed as raw TCP."""
        secrets = tuple(self.runtime.secrets.values())
        redact = self.runtime.secret_index.redact
        decision = notes.decision
        try:
            self.writer.submit(AuditRecord(
                time=notes.started, request_id=notes.request_id, agent=notes.agent, method=TUNNEL_METHOD,
                scheme="tcp", host=redact(scrub(decision.host if decision and decision.host else host, secrets)),
                port=port, path="", query="", decision=notes.outcome, reason=notes.reason, rule=notes.rule,
                policy_sha256=decision.policy_sha256 if decision else self.runtime.policy.sha256,
                credentials="", upstream_status=None, duration_ms=max(0.0, (time.time() - notes.started) * 1000),
                bytes_out=notes.bytes_out, bytes_in=notes.bytes_in, approval_id=None, scrubbed=0,
                detail=self.runtime.isolation_note(
                    notes.token_hash, redact(scrub(notes.detail, secrets)) if notes.detail else None),
            ))
        except Exception:
            log.exception("writing the audit row of %s failed", notes.request_id)

    def _record(self, flow: http.HTTPFlow) -> None:
        notes = notes_of(flow)
        if notes.recorded:
            return
        notes.recorded = True
        try:
            self.writer.submit(self._row(flow, notes))
        except Exception:
            log.exception("writing the audit row of %s failed", notes.request_id)

    def record_event(self, flow: http.HTTPFlow, outcome: str, reason: str, detail: str) -> None:
        """One more row for a flow already recorded: something refused after it was let through
        (a WebSocket message). The row repeats the flow's request with its own outcome."""
        notes = replace(notes_of(flow), outcome=outcome, reason=reason, detail=detail, rule=None)
        try:
            self.writer.submit(self._row(flow, notes))
        except Exception:
            log.exception("writing an audit row of %s failed", notes.request_id)

    def _row(self, flow: http.HTTPFlow, notes) -> AuditRecord:
        decision = notes.decision
        secrets = tuple(self.runtime.secrets.values())
        outcome = notes.outcome
        if not outcome:  # nothing decided: mitmproxy refused or lost the flow before our hooks ran
            outcome, notes.reason = "error", notes.reason or "not_decided"
        if flow.error and outcome in FORWARDED:
            notes.detail = notes.detail or flow.error.msg
        response = flow.response
        bytes_in = notes.bytes_in if notes.bytes_in else len(response.raw_content or b"") if response else 0
        redact = self.runtime.secret_index.redact
        detail = self.runtime.isolation_note(
            notes.token_hash, redact(scrub(notes.detail, secrets)) if notes.detail else None)
        if decision is not None:
            host, path, query = decision.host or flow.request.host, decision.canonical_path, decision.query
        else:
            host, path, query = flow.request.host, flow.request.path.split("?")[0], ""
        return AuditRecord(
            time=notes.started,
            request_id=notes.request_id,
            agent=notes.agent,
            method=flow.request.method,
            scheme=flow.request.scheme or "tunnel",
            host=host or "unknown",
            port=flow.request.port or 1,
            path=redact(scrub(path, secrets)),
            query=redact(scrub(mask_query(query, secrets), secrets)),
            decision=outcome,
            reason=notes.reason,
            rule=notes.rule,
            policy_sha256=decision.policy_sha256 if decision else self.runtime.policy.sha256,
            credentials=",".join(notes.credentials),
            upstream_status=response.status_code if response is not None and outcome in FORWARDED else None,
            duration_ms=max(0.0, (time.time() - notes.started) * 1000),
            bytes_out=len(flow.request.raw_content or b""),
            bytes_in=bytes_in,
            approval_id=notes.approval_id,
            scrubbed=int(notes.scrubbed),
            detail=detail,
        )
