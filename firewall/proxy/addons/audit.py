"""One audit row per request, handed to the batched writer when the flow ends.

Runs last, so it sees what every other addon decided. Refused CONNECTs and
tunnels that do not carry HTTP(S) (refused, or relayed under `allow tcp`) get a
row too.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace

from mitmproxy import http

from firewall.audit import AuditRecord, ProcessAuditWriter
from firewall.policy.decision import TUNNEL_METHOD
from firewall.policy.outcomes import Outcome
from firewall.proxy.notes import FlowNotes, notes_of
from firewall.proxy.refusals import ProxyReason
from firewall.proxy.runtime import Runtime
from firewall.redaction import MASK, looks_secret, mask_query

log = logging.getLogger("firewall.proxy")

# Headers whose values are credentials whatever they look like (looks_secret reads names and values).
_SECRET_HEADERS = frozenset({"cookie", "set-cookie", "proxy-authorization", "authorization"})


class CountingWriter:
    """Benchmarks only (`firewall proxy start --audit off`, bench/audit_log.py): stands in for
    the ProcessAuditWriter, counting the records it is handed and writing none, so the cost of the
    audit log can be measured as the difference. Never used unless asked for."""

    def __init__(self) -> None:
        self.written = 0  # records received (none written), named as the writers' count

    unwritten = 0

    def submit(self, record: AuditRecord) -> None:
        self.written += 1

    def unavailable(self) -> str | None:
        return None

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
        decision = notes.decision
        try:
            self.writer.submit(
                self._redacted(
                    AuditRecord(
                        time=notes.started,
                        request_id=notes.request_id,
                        agent=notes.agent,
                        method=TUNNEL_METHOD,
                        scheme="tcp",
                        host=decision.host if decision and decision.host else host,
                        port=port,
                        path="",
                        query="",
                        decision=notes.outcome,
                        reason=notes.reason,
                        rule=notes.rule,
                        policy_sha256=decision.policy_sha256 if decision else self.runtime.policy.sha256,
                        credentials="",
                        upstream_status=None,
                        duration_ms=max(0.0, (time.time() - notes.started) * 1000),
                        bytes_out=notes.bytes_out,
                        bytes_in=notes.bytes_in,
                        approval_id=None,
                        scrubbed=0,
                        detail=self.runtime.isolation_note(notes.token_hash, notes.detail),
                    )
                )
            )
        except Exception:
            log.exception("writing the audit row of %s failed", notes.request_id)

    def record_now(self, flow: http.HTTPFlow) -> None:
        """Write the row of a flow that has not ended: one cut at a stop (addons/drain.py)."""
        self._record(flow)

    def _record(self, flow: http.HTTPFlow) -> None:
        notes = notes_of(flow)
        if notes.recorded:
            return
        notes.recorded = True
        try:
            self.writer.submit(self._row(flow, notes))
        except Exception:
            log.exception("writing the audit row of %s failed", notes.request_id)

    def record_event(self, flow: http.HTTPFlow, outcome: Outcome, reason: str, detail: str) -> None:
        """One more row for a flow already recorded: something refused after it was let through
        (a WebSocket message). The row repeats the flow's request with its own outcome."""
        notes = replace(notes_of(flow), outcome=outcome, reason=reason, detail=detail, rule=None)
        try:
            self.writer.submit(self._row(flow, notes))
        except Exception:
            log.exception("writing an audit row of %s failed", notes.request_id)

    def record_turn(self, flow: http.HTTPFlow, notes: FlowNotes) -> None:
        """The row of one turn taken over a WebSocket (addons/ws_budgets.py): the upgrade's request as
        `wss` (`ws`), with the turn's own id, outcome, bytes and usage in `notes`."""
        try:
            row = self._row(flow, notes)
            scheme = "ws" if row.scheme == "http" else "wss"
            self.writer.submit(replace(row, scheme=scheme, bytes_out=notes.bytes_out, bytes_in=notes.bytes_in))
        except Exception:
            log.exception("writing the audit row of %s failed", notes.request_id)

    def _redacted(self, record: AuditRecord) -> AuditRecord:
        """`record` with every form of every vault value masked in each of its text fields: an agent
        chooses the method, host, path and query it sends, and may put a secret in any of them."""
        redact = self.runtime.secret_index.redact

        def clean(text: str | None) -> str | None:
            return redact(text) if text else text

        return replace(
            record,
            agent=clean(record.agent),
            model=clean(record.model),
            method=clean(record.method),
            host=clean(record.host),
            path=clean(record.path),
            query=clean(mask_query(record.query, redact)),
            rule=clean(record.rule),
            detail=clean(record.detail),
        )

    def _row(self, flow: http.HTTPFlow, notes) -> AuditRecord:
        decision = notes.decision
        outcome = notes.outcome
        if outcome is None:  # nothing decided: mitmproxy refused or lost the flow before our hooks ran
            outcome, notes.reason = Outcome.ERROR, notes.reason or ProxyReason.NOT_DECIDED
        if flow.error and outcome.forwarded:
            notes.detail = notes.detail or flow.error.msg
        response = flow.response
        bytes_in = notes.bytes_in if notes.bytes_in else len(response.raw_content or b"") if response else 0
        if decision is not None:
            host, path, query = decision.host or flow.request.host, decision.canonical_path, decision.query
        else:
            host, path, query = flow.request.host, flow.request.path.split("?")[0], ""
        return self._redacted(
            AuditRecord(
                time=notes.started,
                request_id=notes.request_id,
                agent=notes.agent,
                method=flow.request.method,
                scheme=flow.request.scheme or "tunnel",
                host=host or "unknown",
                port=flow.request.port or 1,
                path=path,
                query=query,
                decision=outcome,
                reason=notes.reason,
                rule=notes.rule,
                policy_sha256=decision.policy_sha256 if decision else self.runtime.policy.sha256,
                credentials=",".join(notes.credentials),
                upstream_status=response.status_code if response is not None and outcome.forwarded else None,
                duration_ms=max(0.0, (time.time() - notes.started) * 1000),
                bytes_out=len(flow.request.raw_content or b""),
                bytes_in=bytes_in,
                approval_id=notes.approval_id,
                scrubbed=int(notes.scrubbed),
                detail=self.runtime.isolation_note(notes.token_hash, notes.detail),
                input_tokens=notes.input_tokens,
                output_tokens=notes.output_tokens,
                cached_tokens=notes.cached_tokens,
                cost_usd=notes.cost_usd,
                model=notes.model,
                fields=self._fields(notes.fields),
            )
        )

    def _fields(self, fields: dict | None) -> str | None:
        """The recorded request fields as JSON, each value that looks like a credential or holds a vault
        value masked (a condition on it then replays as unknown)."""
        if not fields:
            return None
        redact = self.runtime.secret_index.redact

        def masked(name: str, value: object) -> object:
            if not isinstance(value, str):
                return value
            return MASK if name in _SECRET_HEADERS or looks_secret(name, value, redact) else value

        out = {}
        for field, value in fields.items():
            name = field.rsplit(".", 1)[-1]
            out[field] = [masked(name, v) for v in value] if isinstance(value, list) else masked(name, value)
        return json.dumps(out, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
