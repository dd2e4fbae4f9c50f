"""Asking the decision engine about each request and doing what it says.

No policy logic lives here: this addon turns a mitmproxy flow into a
`Request`, calls `decide()`, and maps the `Decision` onto the flow — a local
403 or 429, or the credentials injected and the canonical path sent on.
Anything that goes wrong in here refuses the request (fail closed).

A WebSocket upgrade the policy blocks is refused with 426 rather than 403: WebSocket
clients that can also speak plain HTTP (Codex's Responses API) take 426 as "not over a
WebSocket here" and fall back at once, where any other refusal is retried with backoff
(docs/proxy.md).
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import replace
from urllib.parse import quote

from mitmproxy import http

from firewall.approvals.broker import ApprovalBroker
from firewall.approvals.preview import BoundRequest
from firewall.budgets.usage import api_of
from firewall.policy import Decision, Mode, Request, Verdict, field_values
from firewall.policy.outcomes import Outcome, approval_outcome, blocked_outcome, forwarded_outcome
from firewall.proxy.addons.reauthorize import remember_oauth
from firewall.proxy.budget_gate import budget_refusal, check_budgets
from firewall.proxy.budget_store import BudgetStore, Spent
from firewall.proxy.deciding import decide_with_addresses
from firewall.proxy.exfil import carried_secrets
from firewall.proxy.inject import CredentialUnavailable, apply_injections
from firewall.proxy.limiter import Limiter, LimitsUnavailable
from firewall.proxy.notes import FlowNotes, notes_of
from firewall.proxy.oauth import TokenKeeper
from firewall.proxy.refusals import ProxyReason
from firewall.proxy.resolver import Resolver
from firewall.proxy.responses import refuse
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
        budgets: BudgetStore | None = None,
    ):
        self.runtime = runtime
        self.limiter = limiter
        self.budgets = budgets or BudgetStore(limiter)
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
            policy = self.runtime.policy  # one version decides it all
            try:
                decision, addresses = await decide_with_addresses(
                    policy,
                    request,
                    self.resolver,
                    time.time(),  # one version decides it all
                )
            except OSError as exc:
                why = f"{request.host}: {exc}"
                refuse(flow, Outcome.ERROR, ProxyReason.UNRESOLVABLE, why, say=f"{request.host} could not be resolved")
                return
            notes.decision = decision
            if is_websocket_upgrade(flow.request):  # its turns are decided again as POSTs (ws_budgets.py)
                notes.request = replace(request, addresses=addresses)
            notes.rule = decision.rule.id if decision.rule else None
            if decision.host:  # what the block's conditions read, for the audit log (and so replay)
                block = policy.block_for(decision.host, request.port)
                notes.fields = field_values.values(
                    block, request, decision.host, decision.canonical_path, decision.query
                )
            if await self._apply(flow, notes, decision):
                # Let through: the proxy may connect there, to these addresses only (dial_guard.py).
                self.resolver.pin(request.host, request.port, addresses)
        except Exception as exc:  # fail closed: a request we could not decide goes nowhere
            log.exception("deciding %s failed", notes.request_id)
            refuse(flow, Outcome.ERROR, ProxyReason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")

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
        if decision.verdict is Verdict.BLOCK:
            upgrade = 426 if is_websocket_upgrade(flow.request) else None  # see the module's docstring
            reason, said = decision.reason, _blocked_message(decision)
            refuse(flow, blocked_outcome(decision), reason, decision.message, say=said, status=upgrade)
            return False
        if decision.verdict is Verdict.APPROVE and not await self._approved(flow, notes, decision):
            return False
        if decision.budgets and decision.mode is not Mode.REPORT and _uncountable_socket(flow, decision):
            # Only a Responses API socket's turns are read (ws_budgets.py): any other socket under a
            # budget could spend without limit, so it is refused (426, as a refused upgrade is).
            why = f"a WebSocket on {decision.canonical_path} is under a budget, and its use cannot be counted"
            refuse(flow, Outcome.BLOCK, ProxyReason.BUDGET_UNCOUNTABLE, why, status=426)
            return False
        # An approved request goes on exactly like an allowed one: limits, path, credentials.
        now = time.time()
        try:
            limit = await self.limiter.check(decision.limits, now)
            spent = None
            if decision.budgets and limit.over is None:
                body = flow.request.raw_content or b""
                held = await check_budgets(self.budgets, decision, body, self.runtime.policy.prices, now)
                spent, notes.budget_hold = (held, None) if isinstance(held, Spent) else (None, held)
        except LimitsUnavailable as exc:  # fail closed, at once: the limiter logged it (once per outage)
            refuse(flow, Outcome.ERROR, ProxyReason.LIMITS_UNAVAILABLE, str(exc), headers={"retry-after": "1"})
            return False
        over = limit.over is not None or spent is not None
        outcome = forwarded_outcome(decision, approved=notes.approval_id is not None, over_limit=over)
        if outcome is Outcome.LIMIT and limit.over is not None:
            refuse(
                flow,
                outcome,
                ProxyReason.RATE_LIMITED,
                f"over {limit.over.source.text}",
                say=f"{limit.over.source.text}; retry after {limit.retry_after}s",
                rule=limit.over.source.id,
                headers={"retry-after": str(limit.retry_after)},
            )
            return False
        if outcome is Outcome.LIMIT and spent is not None:
            budget = spent.budget
            notes.refuse(outcome, ProxyReason.BUDGET_EXHAUSTED, f"over {budget.source.text}", budget.source.id)
            responses_api = api_of(decision.canonical_path) in ("responses", "compact")  # as Codex stops on
            flow.response = budget_refusal(spent, notes.request_id, now, responses_api=responses_api)
            if responses_api and is_websocket_upgrade(flow.request):
                # Codex reads no body from a refused upgrade (so not `usage_limit_reached`) and waits out
                # a 429's Retry-After, for hours; a 426 it takes as "no WebSocket here" and sends the turn
                # as a POST at once, which gets this refusal with its body, and stops (docs/budgets.md).
                flow.response.status_code = 426
            return False
        if spent is not None:  # report mode: let through and counted on, as if within its budget
            notes.budget_hold = self.budgets.hold(decision.budgets, now)
        # Upstream sees exactly the path that was decided on.
        flow.request.path = decision.canonical_path + (f"?{decision.query}" if decision.query else "")
        try:
            oauth = await self.oauth.access_all(decision.inject) if self.oauth else {}
            notes.credentials = apply_injections(flow.request, decision.inject, self.runtime.secret, oauth)
        except CredentialUnavailable as exc:
            retry = {"retry-after": str(exc.retry_after)} if exc.retry_after else None
            refuse(flow, Outcome.ERROR, exc.code, str(exc), headers=retry)
            return False
        remember_oauth(flow, decision.inject, oauth)
        self.runtime.note_used(i.secret for i in decision.inject)
        notes.outcome, notes.reason = outcome, decision.reason
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
            request=BoundRequest(
                agent=notes.agent,
                method=flow.request.method,
                scheme=flow.request.scheme,
                host=decision.host,
                port=flow.request.port,
                path=decision.canonical_path,
                query=decision.query,
                body=flow.request.raw_content or b"",
                headers=tuple(flow.request.headers.items(multi=True)),
            ),
            content_type=flow.request.headers.get("content-type"),
            rule=rule,
            rule_text=text,
            reason=decision.rule_reason,
            policy_sha256=decision.policy_sha256,
            timeout=decision.approval_timeout,
            redact=self.runtime.secret_index.redact,
        )
        ended = await self.broker.hold(held, gone=lambda: not flow.client_conn.connected)
        notes.approval_id = ended.approval_id
        if ended.approved:
            notes.detail = ended.detail
            return True
        refuse(flow, approval_outcome(ended.state), decision.reason, ended.detail)
        return False


def _uncountable_socket(flow: http.HTTPFlow, decision: Decision) -> bool:
    return is_websocket_upgrade(flow.request) and api_of(decision.canonical_path) != "responses"


def is_websocket_upgrade(request: http.Request) -> bool:
    """A request asking to become a WebSocket (RFC 6455, 4.1): Upgrade names "websocket"."""
    offered = ",".join(request.headers.get_all("upgrade")).lower()
    return "websocket" in (token.strip() for token in offered.split(","))


def _blocked_message(decision: Decision) -> str:
    """What the agent is told, after the refusal table's "blocked by the firewall policy: "."""
    message = decision.message
    if decision.rule_reason:
        message += f" ({decision.rule_reason})"
    return message
