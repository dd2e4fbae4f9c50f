"""Budgets and request limits on turns taken over a Responses API WebSocket (docs/budgets.md,
"WebSockets"; docs/policy-language.md, limits).

The upgrade was decided like any request, and its decision names the budgets and the request
limits; a socket on a Responses path (`/v1/responses`, `/backend-api/codex/responses`) then
carries many turns, each counted exactly as a streamed `POST` to that path would be. A turn
counts against the upgrade's budgets and limits and against those the engine names for a
`POST` of the turn (its message as the body) to the socket's path (`turn_decision`), so a
budget narrowed to `POST` is not escaped by switching from HTTP to the socket:

- before a turn goes out: a client message that starts one (`response.create`,
  `budgets.ws.turn_start`) counts against the request limits and is checked against the
  budgets, as a request is (the upgrade itself counted once against the limits, as the
  request it is). Over a limit, or a spent budget, drops it, and the agent gets, in place of
  the response, the `error` event the Responses API sends on a socket, with the HTTP
  refusal's body: `429 rate_limited` with `Retry-After`, or `429 budget_exhausted` (in the
  shape Codex stops on at once). Under `mode report` it goes on, marked `would_limit`.
- when the server ends the turn (`response.completed`, `.incomplete`, `.failed`), its usage
  is counted (`budget_gate.charge`), added to the counters, and the turn gets an audit row of
  its own: the upgrade's request as `wss`, the turn's own request id, tokens and cost.
- a turn the server refuses with an `error` event before beginning it is not billed (an
  error answer); one it began and never ended (an error later, the socket closed) counts as
  unreadable, by the host block's `usage unreadable`.

No policy logic: the decision was the engine's. Runs after WebSocketGuard, so a message it
dropped (a leaked secret, a revoked run) starts no turn. Messages the proxy injected (its own
refusals) are not read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields, replace

from mitmproxy import ctx, http

from firewall.budgets.usage import Usage, api_of
from firewall.budgets.ws import OpenTurn, ServerEvent, Turns, server_event, turn_start
from firewall.policy import CompiledPolicy, Decision, Request, decide
from firewall.policy.outcomes import Outcome, forwarded_outcome
from firewall.proxy.addons.audit import Auditor
from firewall.proxy.addons.budgets import note_charge
from firewall.proxy.addons.enforce import INSPECTION_LIMIT
from firewall.proxy.budget_gate import budget_refusal_event, charge, check_budgets
from firewall.proxy.budget_store import BudgetStore, Hold, Spent
from firewall.proxy.limiter import Limiter, LimitOutcome, LimitsUnavailable
from firewall.proxy.notes import FlowNotes, new_request_id, notes_of
from firewall.proxy.refusals import ProxyReason, refusal
from firewall.proxy.responses import error_object, websocket_error
from firewall.proxy.runtime import Runtime

log = logging.getLogger("firewall.proxy")
_TURNS = "firewall-ws-turns"


@dataclass(frozen=True)
class Ticket:
    """One turn let through: where it counts, and what its audit row needs."""

    request_id: str
    started: float
    decision: Decision  # the upgrade's, with the turn's own limits and budgets (turn_decision)
    hold: Hold
    outcome: Outcome  # allow, approve, would_* (as the upgrade's), or would_limit
    message: bytes  # the client message that started it (its max_tokens, when the usage is unreadable)


class WebSocketMeter:
    def __init__(self, runtime: Runtime, store: BudgetStore, auditor: Auditor, limiter: Limiter):
        self.runtime = runtime
        self.store = store
        self.auditor = auditor
        self.limiter = limiter

    async def websocket_message(self, flow: http.HTTPFlow) -> None:
        turns = _turns(flow, self.runtime.policy)
        if turns is None:
            return
        message = flow.websocket.messages[-1]
        if message.injected or message.dropped:
            return
        if message.from_client:
            start = turn_start(message.content)
            if start is not None:
                await self._start(flow, turns, start.lane, message)
            return
        turns.received(len(message.content))
        event = server_event(message.content)
        if event is None:
            return
        if event.kind == "created":
            turns.begin(event.lane)
            return
        turn = turns.end(event)
        if turn is not None:
            await self._end(flow, turn, event)

    async def websocket_end(self, flow: http.HTTPFlow) -> None:
        turns = flow.metadata.get(_TURNS)
        if isinstance(turns, Turns):
            for turn in turns.close():
                # Begun and never ended: it used what it used, which nothing said. Never begun: not billed.
                why = "the WebSocket closed before the turn ended"
                await self._settle(flow, turn, None, billed=turn.answered, detail=why)

    error = websocket_end  # a socket mitmproxy lost or killed: its open turns are settled the same way

    async def _start(self, flow: http.HTTPFlow, turns: Turns[Ticket], lane: str | None, message) -> None:
        notes = notes_of(flow)
        assert notes.decision is not None  # _turns() found a decision
        request_id, now = new_request_id(), time.time()
        decision = turn_decision(self.runtime.policy, notes.decision, notes.request, message.content, now)
        if not (decision.budgets or decision.limits):
            return  # neither the upgrade nor a POST of this turn counts against anything
        try:  # as Enforcer does for a request: the limits counted first, then the budgets checked
            limit = await self.limiter.check(decision.limits, now) if decision.limits else LimitOutcome(None, 0)
            held: Spent | Hold | None = None
            if decision.budgets and limit.over is None:
                held = await check_budgets(self.store, decision, message.content, self.runtime.policy.prices, now)
        except LimitsUnavailable as exc:  # fail closed, as for a request: the limiter logged it
            message.drop()
            answer = refusal(Outcome.ERROR, ProxyReason.LIMITS_UNAVAILABLE)
            error = error_object(answer.error_type, answer.message.format(detail=exc), request_id)
            self._refuse(flow, _row(notes, request_id, now, Outcome.ERROR, ProxyReason.LIMITS_UNAVAILABLE, str(exc)))
            _answer(flow, websocket_error(answer.status, error, {"retry-after": "1"}))
            return
        approved = notes.approval_id is not None
        over = limit.over is not None or isinstance(held, Spent)
        outcome = forwarded_outcome(decision, approved=approved, over_limit=over)
        if outcome is Outcome.LIMIT and limit.over is not None:
            message.drop()
            source = limit.over.source
            row = _row(notes, request_id, now, outcome, ProxyReason.RATE_LIMITED, f"over {source.text}")
            row.rule = source.id
            self._refuse(flow, row)
            _answer(flow, rate_limit_event(source.text, source.id, limit.retry_after, request_id))
            return
        if outcome is Outcome.LIMIT and isinstance(held, Spent):
            message.drop()
            source = held.budget.source
            row = _row(notes, request_id, now, outcome, ProxyReason.BUDGET_EXHAUSTED, f"over {source.text}")
            row.rule = source.id
            self._refuse(flow, row)
            _answer(flow, budget_refusal_event(held, request_id, now))
            return
        if not isinstance(held, Hold):  # no budget, or report mode over one: counted on as if within
            held = self.store.hold(decision.budgets, now)
        turns.open(lane, Ticket(request_id, now, decision, held, outcome, message.content))

    async def _end(self, flow: http.HTTPFlow, turn: OpenTurn[Ticket], event: ServerEvent) -> None:
        if event.kind == "error":  # refused by the server before it began: an error answer, not billed
            why = f"the upstream answered the turn with an error ({event.end})"
            await self._settle(flow, turn, None, billed=turn.answered, detail=why)
        else:
            await self._settle(flow, turn, event.usage, billed=True, detail=event.end)

    async def _settle(
        self, flow: http.HTTPFlow, turn: OpenTurn[Ticket], usage: Usage | None, *, billed: bool, detail: str
    ) -> None:
        notes, ticket = notes_of(flow), turn.ticket
        decision = ticket.decision
        row = _row(notes, ticket.request_id, ticket.started, ticket.outcome, notes.reason, detail)
        row.bytes_in, row.bytes_out = turn.received, len(ticket.message)
        amounts = (0,) * len(decision.budgets)  # not billed: the reservations go back
        if billed:
            charged = charge(decision, self.runtime.policy.prices, usage, ticket.message)
            note_charge(row, charged)
            amounts = charged.amounts
        try:
            await self.store.add(decision.budgets, ticket.hold, amounts, time.time())
        finally:
            self.auditor.record_turn(flow, row)

    def _refuse(self, flow: http.HTTPFlow, row: FlowNotes) -> None:
        log.info("%s: a WebSocket turn was refused: %s", row.request_id, row.detail)
        self.auditor.record_turn(flow, row)


# What a turn's row does not take from the upgrade's: its figures start as a new row's do.
_OWN = ("bytes_in", "bytes_out", "budget_hold", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "model")
_FRESH = {f.name: f.default for f in fields(FlowNotes) if f.name in (*_OWN, "recorded")}


def _row(notes: FlowNotes, request_id: str, started: float, outcome: Outcome, reason: str, detail: str) -> FlowNotes:
    """The audit row of one turn: the upgrade's, with the turn's own id, time, outcome and figures."""
    detail = f"WebSocket turn on {notes.request_id}: {detail}"
    return replace(
        notes, request_id=request_id, started=started, outcome=outcome, reason=reason, detail=detail, **_FRESH
    )


def rate_limit_event(limit: str, rule: str, retry_after: int, request_id: str) -> bytes:
    """A turn over a request limit, as the `error` event: the HTTP refusal's `429 rate_limited`."""
    answer = refusal(Outcome.LIMIT, ProxyReason.RATE_LIMITED)
    said = answer.message.format(detail=f"{limit}; retry after {retry_after}s")
    error = error_object(answer.error_type, said, request_id, rule=rule)
    return websocket_error(answer.status, error, {"retry-after": str(retry_after)})


def _answer(flow: http.HTTPFlow, event: bytes) -> None:
    """Send the agent a message of the proxy's own, in place of the server's answer."""
    ctx.master.commands.call("inject.websocket", flow, True, event, True)


def turn_decision(
    policy: CompiledPolicy, upgrade: Decision, request: Request | None, content: bytes, now: float
) -> Decision:
    """The upgrade's decision, counting the limits and budgets of one turn: the upgrade's, and those
    the engine names for a `POST` of the turn (its message as the body) to the socket's path, which
    an agent could send instead. Each counts once; a POST the policy refuses names none."""
    if request is None:
        return upgrade
    size = len(content)
    post = replace(
        request, method="POST", body=content[:INSPECTION_LIMIT], body_size=size, body_complete=size <= INSPECTION_LIMIT
    )
    twin = decide(policy, post, now)
    limits = upgrade.limits + tuple(limit for limit in twin.limits if limit not in upgrade.limits)
    budgets = upgrade.budgets + tuple(budget for budget in twin.budgets if budget not in upgrade.budgets)
    if (limits, budgets) == (upgrade.limits, upgrade.budgets):
        return upgrade
    return replace(upgrade, limits=limits, budgets=budgets)


def _turns(flow: http.HTTPFlow, policy: CompiledPolicy) -> Turns[Ticket] | None:
    """The socket's open turns; None for a socket whose turns count against no budget or limit: not
    on a Responses path, or neither its upgrade nor its host block names any (a turn's own are only
    known from its message: `turn_decision`)."""
    turns = flow.metadata.get(_TURNS)
    if turns is None:
        notes = notes_of(flow)
        decision, request = notes.decision, notes.request
        counted = decision is not None and api_of(decision.canonical_path) == "responses"
        if counted and decision is not None and not (decision.budgets or decision.limits):
            block = policy.block_for(decision.host, request.port) if request is not None and decision.host else None
            counted = block is not None and bool(block.budgets or block.limits)
        turns = flow.metadata[_TURNS] = Turns[Ticket]() if counted else False
    return turns or None
