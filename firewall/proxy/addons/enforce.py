"""Asking the decision engine about each request and doing what it says.

No policy logic lives here: this addon turns a mitmproxy flow into a
`Request`, calls `decide()`, and maps the `Decision` onto the flow — a local
403 or 429, or the credentials injected and the canonical path sent on.
Anything that goes wrong in here refuses the request (fail closed).
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import replace
from urllib.parse import quote

from mitmproxy import http

from firewall.approvals.broker import REFUSALS, ApprovalBroker
from firewall.policy import Decision, Mode, Reason, Request, Verdict
from firewall.proxy.addons.reauthorize import remember_oauth
from firewall.proxy.deciding import decide_with_addresses
from firewall.proxy.exfil import carried_secrets
from firewall.proxy.inject import CredentialUnavailable, apply_injections
from firewall.proxy.limiter import Limiter, LimitsUnavailable
from firewall.proxy.notes import FlowNotes, notes_of
from firewall.proxy.oauth import TokenKeeper
from firewall.proxy.resolver import Resolver
from firewall.proxy.responses import error_response
from firewall.proxy.runtime import Runtime

log = logging.getLogger("firewall.proxy")

INSPECTION_LIMIT = 1024 * 1024  # bytes of a request body that conditions can read
_PATH_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


def raw_target(flow: http.HTTPFlow) -> str:
    """The request target exactly as the agent sent it; non-ASCII bytes percent-encoded."""
    return quote(flow.request.data.path, safe=_PATH_SAFE)


class Enforcer:
    def __init__(
        self,
        runtime: Runtime,
        limiter: Limiter,
        resolver: Resolver,
        broker: ApprovalBroker,
        oauth: TokenKeeper | None = None,
    ):
        self.runtime = runtime
        self.limiter = limiter
        self.resolver = resolver
        self.oauth = oauth
        self.broker = broker
        self.tunnels: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # client conn -> (host, port)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if not flow.response:
            self.tunnels[flow.client_conn] = (flow.request.host, flow.request.port)

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        notes = notes_of(flow)
        try:
            request = self._request(flow, notes)
            try:
                decision, addresses = await decide_with_addresses(
                    self.runtime.policy,
                    request,
                    self.resolver,
                    time.time(),  # one version decides it all
                )
            except OSError as exc:
                notes.refuse("error", "unresolvable", f"{request.host}: {exc}")
                flow.response = error_response(
                    502, "upstream_unreachable", f"{request.host} could not be resolved", notes.request_id
                )
                return
            notes.decision = decision
            notes.rule = decision.rule.id if decision.rule else None
            if await self._apply(flow, notes, decision):
                # Let through: the proxy may connect there, to these addresses only (dial_guard.py).
                self.resolver.pin(request.host, request.port, addresses)
        except Exception as exc:  # fail closed: a request we could not decide goes nowhere
            log.exception("deciding %s failed", notes.request_id)
            notes.refuse("error", "internal_error", f"{type(exc).__name__}: {exc}")
            flow.response = error_response(
                500,
                "firewall_error",
                "the firewall could not decide this request, so it was refused",
                notes.request_id,
            )

    def _request(self, flow: http.HTTPFlow, notes: FlowNotes) -> Request:
        tunnel = self.tunnels.get(flow.client_conn)
        host, port = tunnel if tunnel else (flow.request.host, flow.request.port)
        # Every Host header: HTTP/2 may carry them beside :authority, and more than one (mitmproxy's
        # `host_header` is the first, or the authority); an upstream may read any of them.
        claimed = flow.request.headers.get_all("host")
        if (flow.request.host, flow.request.port) != (host, port):
            claimed.append(f"{flow.request.host}:{flow.request.port}")  # where mitmproxy would route it
        if flow.client_conn.sni and tunnel:
            claimed.append(flow.client_conn.sni)
        if flow.request.authority:
            # An absolute-form target inside a tunnel ("GET https://other.host/ HTTP/1.1") keeps its
            # authority: the upstream may route by it rather than by Host (RFC 9112, 3.2.2).
            claimed.append(flow.request.authority)
        raw = flow.request.raw_content or b""
        # An encoded (gzip, ...) body is not unpacked: conditions on it cannot be read (fail closed).
        readable = len(raw) <= INSPECTION_LIMIT and "content-encoding" not in flow.request.headers
        request = Request(
            # As sent: mitmproxy's `method` upper-cases it, so "get" would be decided as GET and
            # sent on as "get", which an upstream may read otherwise; the engine refuses it instead.
            method=flow.request.data.method.decode("utf-8", "surrogateescape"),
            scheme=flow.request.scheme,
            host=host,
            port=port,
            target=raw_target(flow),
            headers=tuple(flow.request.headers.items(multi=True)),
            body=raw[:INSPECTION_LIMIT],
            body_size=len(raw),
            body_complete=readable,
            agent=notes.agent,
            claimed=tuple(claimed),
        )
        found = carried_secrets(self.runtime.secret_index, request, raw, flow.request.headers.get("content-encoding"))
        return replace(request, secrets=found)

    async def _apply(self, flow: http.HTTPFlow, notes: FlowNotes, decision: Decision) -> bool:
        """Do what the decision says; True when the request goes upstream."""
        report = decision.mode is Mode.REPORT
        if decision.verdict is Verdict.BLOCK:
            exfiltration = decision.reason is Reason.EXFILTRATION
            notes.refuse("exfiltration" if exfiltration else "block", decision.reason.value, decision.message)
            flow.response = error_response(
                403,
                "exfiltration_blocked" if exfiltration else "policy_blocked",
                _blocked_message(decision),
                notes.request_id,
                rule=notes.rule,
            )
            return False
        if decision.verdict is Verdict.APPROVE and not await self._approved(flow, notes, decision):
            return False
        # An approved request goes on exactly like an allowed one: limits, path, credentials.
        outcome = "approve" if notes.approval_id else f"would_{decision.would.value}" if decision.would else "allow"
        try:
            limit = await self.limiter.check(decision.limits, time.time())
        except LimitsUnavailable as exc:  # fail closed, at once: the limiter logged it (once per outage)
            notes.refuse("error", "limits_unavailable", str(exc))
            flow.response = error_response(
                503,
                "limits_unavailable",
                f"the firewall cannot count this request against its limits, so it was refused: {exc}; retry later",
                notes.request_id,
                rule=notes.rule,
                headers={"retry-after": "1"},
            )
            return False
        if limit.over is not None:
            if not report:
                notes.refuse("limit", "rate_limited", f"over {limit.over.source.text}", limit.over.source.id)
                flow.response = error_response(
                    429,
                    "rate_limited",
                    f"rate limit reached: {limit.over.source.text}; retry after {limit.retry_after}s",
                    notes.request_id,
                    rule=limit.over.source.id,
                    headers={"retry-after": str(limit.retry_after)},
                )
                return False
            outcome = "would_limit"
        # Upstream sees exactly the path that was decided on.
        flow.request.path = decision.canonical_path + (f"?{decision.query}" if decision.query else "")
        try:
            oauth = await self.oauth.access_all(decision.inject) if self.oauth else {}
            notes.credentials = apply_injections(flow.request, decision.inject, self.runtime.secret, oauth)
        except CredentialUnavailable as exc:
            notes.refuse("error", exc.code, str(exc))
            retry = {"retry-after": str(exc.retry_after)} if exc.retry_after else None
            flow.response = error_response(503, exc.code, str(exc), notes.request_id, rule=notes.rule, headers=retry)
            return False
        remember_oauth(flow, decision.inject, oauth)
        self.runtime.note_used(i.secret for i in decision.inject)
        notes.outcome, notes.reason = outcome, decision.reason.value
        return True

    async def _approved(self, flow: http.HTTPFlow, notes: FlowNotes, decision: Decision) -> bool:
        """Hold the request until a person answers (or a standing grant answers for them).
        True: it may go on; False: it was answered with a refusal."""
        rule, text = (decision.rule.id, decision.rule.text) if decision.rule else ("<default>", "default approve")
        grant = await self.broker.grant_for(notes.agent, rule, text, named=bool(decision.rule and decision.rule.name))
        if grant is not None:
            notes.approval_id, notes.detail = grant.id, f"standing grant by {grant.created_by}"
            return True
        held = await self.broker.describe(
            request_id=notes.request_id,
            agent=notes.agent,
            method=flow.request.method,
            scheme=flow.request.scheme,
            host=decision.host,
            port=flow.request.port,
            path=decision.canonical_path,
            query=decision.query,
            body=flow.request.raw_content or b"",
            headers=tuple(flow.request.headers.items(multi=True)),
            content_type=flow.request.headers.get("content-type"),
            rule=rule,
            rule_text=text,
            reason=decision.rule_reason,
            policy_sha256=decision.policy_sha256,
            timeout=decision.approval_timeout,
            redact=self.runtime.secret_index.redact,
        )
        outcome = await self.broker.hold(held, gone=lambda: not flow.client_conn.connected)
        notes.approval_id = outcome.approval_id
        if outcome.approved:
            notes.detail = outcome.detail
            return True
        status, error_type, message = REFUSALS[outcome.state]
        notes.refuse(error_type, decision.reason.value, outcome.detail)
        flow.response = error_response(
            status, error_type, f"{message} ({outcome.detail})", notes.request_id, rule=notes.rule
        )
        return False


def _blocked_message(decision: Decision) -> str:
    message = f"blocked by the firewall policy: {decision.message}"
    if decision.rule_reason:
        message += f" ({decision.rule_reason})"
    return message
