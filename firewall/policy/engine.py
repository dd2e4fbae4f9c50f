"""The decision engine: `decide(policy, request, now) -> Decision`.

Pure: every input is passed in, nothing is read from the clock, the network,
the disk or the environment. Counting limits is the caller's job; the engine
says which limits apply. The steps are `_decide`'s, below; what the destination
is and may reach (step 2) is `destination.py`'s, which lines of a host block
match (steps 6 and 8) `matching.py`'s.

Precedence, coded in this order with early returns:
 1. A method that is not an HTTP token, or a header holding a line break or NUL (an
    obs-fold continuation a lenient upstream may read as a header of its own, or a
    header injection) → block (malformed_request). TRACE or TRACK
    → block (unsafe_method), whatever the rules say: the server answers by echoing
    the request back, credentials included.
 2. A destination that is not a well-formed host or address → block (invalid_host).
    A Host header, `:authority` or TLS SNI naming another host or port than where
    the connection goes → block (destination_mismatch). A destination that is or
    resolves to an address that is not public (addresses.py: every IANA special-purpose
    entry, and every IPv6 form embedding an IPv4 address) → block (private_address),
    unless a host block names that host and port exactly (a link-local address, or one
    embedding it: as the address itself). An address literal is checked here; the
    addresses a name resolves to (`request.addresses`) only once steps 3-9 let the
    request through (allow, approve, or allow under `mode report`), so a request refused
    anyway is refused for its own reason, and without DNS. Asked without them, such a
    decision comes back partial, `needs_addresses` set (as Cedar's partial answers):
    its verdict holds only if they are public, and the caller resolves the name and
    asks again with them. A block never needs them, nor does an address literal.
    A raw TCP tunnel (scheme "tcp": a CONNECT whose bytes are neither TLS nor HTTP)
    is decided here, after the destination checks, by the `tcp` rule of the host block
    that names it, and by nothing else: no such rule → block (not_http), whatever the
    default and the mode; `allow tcp` → allow, with no limits and no credentials.
 3. A path with no single meaning (encoded '/', '\\' or NUL, '..' above the root,
    bad percent-encoding, ...) → block (ambiguous_path), whatever the rules say.
    A method override (`X-HTTP-Method-Override`, `_method`, ...) naming another method
    than the request's → block (method_override), whatever the rules say: a server that
    honours it acts on a method the policy did not decide on (overrides.py).
 4. No host block names the destination → the default (default_no_host).
 5. Plain HTTP to a block that injects a credential → block (plain_http_credential).
 6. The first rule of the block whose methods, paths and condition match decides
    (rule). A condition that cannot be read (a body that is not JSON or is over
    the inspection limit), or whose operand has a type the operator cannot read, or
    that holds for some values of a repeated query parameter or header and not for
    others, does not match an allow rule and does match a block or approve rule.
    A JSON body read by a condition (of a rule, limit or inject line) that repeats a
    key in one object → block (ambiguous_body), whatever the rules say.
 7. No rule matched → the default (default_no_rule).
 8. Allow and approve carry the block's limits and budgets that match and the
    credentials its inject lines add (first inject wins per header or parameter).
    The engine names the budgets; the proxy checks their counters before the request
    goes out and adds what the answer used after it (docs/budgets.md).
 9. Under `mode report`, a block or approve of steps 4, 6 or 7 becomes allow and
    is recorded in `would`; the safety checks of steps 1, 2, 3, 5 and ambiguous_body
    still block. A host block's own `mode` line decides this for its requests (steps 6
    and 7), whatever the policy's mode.
10. A request that carries a vault secret (`request.secrets`) which the outcome of
    steps 1-9 does not inject into this very request → block (exfiltration),
    overriding that outcome, under `mode report` too. It is checked last because it
    needs to know what would be injected; it wins over every other reason, so an
    attempt to send a secret away is always logged as such.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache
from typing import TypedDict

from firewall.policy import matching
from firewall.policy.addresses import AddressClass
from firewall.policy.compiled import CompiledPolicy
from firewall.policy.conditions import AmbiguousBody, RequestView
from firewall.policy.decision import BudgetRef, Decision, Injection, LimitRef, Mode, Reason, Request, RuleRef, Verdict
from firewall.policy.destination import exempt, first_private, normalized, same_destination
from firewall.policy.hosts import InvalidHost, is_address
from firewall.policy.overrides import method_override
from firewall.policy.paths import AmbiguousPath, CanonicalPath, canonicalize

_METHOD = re.compile(r"[A-Z][A-Z0-9_-]{0,31}")
_UNSAFE_METHODS = frozenset({"TRACE", "TRACK"})
_LINE_BREAK = re.compile(r"[\r\n\x00]")


# Agents send many requests to few endpoints: remember the last few thousand spellings.
# (What raises, raises every time: exceptions are not cached.)
@lru_cache(maxsize=4096)
def _canonical(target: str) -> CanonicalPath:
    return canonicalize(target)


class _Context(TypedDict, total=False):
    """The fields every `Decision` of one request shares, filled in as the steps learn them."""

    policy_sha256: str
    approval_timeout: float
    mode: Mode
    host: str
    canonical_path: str
    query: str
    host_block: RuleRef


def decide(policy: CompiledPolicy, request: Request, now: float) -> Decision:
    decision = _decide(policy, request, now)
    if decision.verdict is not Verdict.BLOCK:
        decision = _resolved(policy, request, decision)
    # 10
    leaked = leaked_secrets(request.secrets, decision.inject)
    if not leaked:
        return decision
    names = ", ".join(f'"{name}"' for name in leaked)
    return replace(
        decision,
        verdict=Verdict.BLOCK,
        reason=Reason.EXFILTRATION,
        rule=None,
        rule_reason=None,
        limits=(),
        budgets=(),
        inject=(),
        would=None,
        needs_addresses=False,
        message=f"the request carries the value of the vault secret {names}, which the policy does not "
        f"add to this request; a secret never goes anywhere but where the policy injects it",
    )


def leaked_secrets(found: tuple[str, ...], injected: tuple[Injection, ...]) -> list[str]:
    """The vault entries among `found` that none of `injected` adds: step 10, also applied by the
    proxy to what an agent sends on an open WebSocket."""
    return sorted(set(found) - {injection.secret for injection in injected})


def _decide(policy: CompiledPolicy, request: Request, now: float) -> Decision:
    base: _Context = {"policy_sha256": policy.sha256, "approval_timeout": policy.approval_timeout, "mode": policy.mode}

    # 1
    if not _METHOD.fullmatch(request.method):
        return Decision(Verdict.BLOCK, Reason.MALFORMED_REQUEST, message="the method is not an HTTP method", **base)
    for name, value in request.headers:
        if _LINE_BREAK.search(name) or _LINE_BREAK.search(value):
            return Decision(
                Verdict.BLOCK,
                Reason.MALFORMED_REQUEST,
                message=f"the header {name.strip()[:40]!r} holds a line break or NUL (obs-fold)",
                **base,
            )
    if request.method in _UNSAFE_METHODS:
        return Decision(
            Verdict.BLOCK,
            Reason.UNSAFE_METHOD,
            message=f"{request.method} is never forwarded: the server echoes the request back, credentials included",
            **base,
        )
    # 2
    try:
        host = normalized(request.host)
    except InvalidHost as exc:
        return Decision(Verdict.BLOCK, Reason.INVALID_HOST, message=str(exc), **base)
    base["host"] = host
    for claim in request.claimed:
        if not same_destination(claim, host, request.port):
            return Decision(
                Verdict.BLOCK,
                Reason.DESTINATION_MISMATCH,
                message=f"{claim!r} does not name the destination {host}:{request.port}",
                **base,
            )
    private = first_private((host,) if is_address(host) else ())  # a name's addresses: _resolved
    if private is not None and not exempt(policy, host, request.port, private):
        return _private(host, request.port, private, base)
    if request.scheme == "tcp":
        return _tunnel(policy, host, request.port, base)
    # 3
    try:
        canonical = _canonical(request.target)
    except AmbiguousPath as exc:
        return Decision(Verdict.BLOCK, Reason.AMBIGUOUS_PATH, message=str(exc), **base)
    base["canonical_path"], base["query"] = canonical.path, canonical.query
    override = method_override(request, canonical.query)
    if override is not None:
        return Decision(Verdict.BLOCK, Reason.METHOD_OVERRIDE, message=override, **base)
    view = RequestView(request, host, canonical.path, canonical.query)

    # 4
    block = policy.block_for(host, request.port)
    if block is None:
        return _report(
            Decision(
                policy.default,
                Reason.DEFAULT_NO_HOST,
                rule=policy.default_source,
                message=f"no host block names {host}:{request.port}",
                **base,
            )
        )
    base["host_block"] = block.source
    if block.mode is not None:  # the block's own mode line wins over the policy's
        base["mode"] = block.mode
    # 5
    if request.scheme == "http" and block.injects:
        return Decision(
            Verdict.BLOCK,
            Reason.PLAIN_HTTP_CREDENTIAL,
            rule=block.source,
            message=f"{host} gets a credential, which is never sent over plain HTTP; use https://",
            **base,
        )
    try:
        # 6, 7
        verdict, reason, rule, rule_reason = policy.default, Reason.DEFAULT_NO_RULE, policy.default_source, None
        for candidate in block.rules_for(request.method):
            if matching.matches(candidate.match, request.method, view, lenient=candidate.verdict is not Verdict.ALLOW):
                verdict, reason, rule, rule_reason = candidate.verdict, Reason.RULE, candidate.source, candidate.reason
                break
        # 8
        limits: tuple[LimitRef, ...] = ()
        budgets: tuple[BudgetRef, ...] = ()
        inject: tuple[Injection, ...] = ()
        if verdict is not Verdict.BLOCK or base["mode"] is Mode.REPORT:
            limits = matching.limits(block, request, view)
            budgets = matching.budgets(block, request, view)
            inject = matching.injections(policy, block, view)
    except AmbiguousBody as exc:
        return Decision(Verdict.BLOCK, Reason.AMBIGUOUS_BODY, message=str(exc), **base)
    # 9
    return _report(
        Decision(
            verdict,
            reason,
            rule=rule,
            rule_reason=rule_reason,
            message=_message(verdict, reason, rule),
            limits=limits,
            budgets=budgets,
            inject=inject,
            **base,
        )
    )


def _tunnel(policy: CompiledPolicy, host: str, port: int, base: _Context) -> Decision:
    block = policy.block_for(host, port)
    if block is None or block.tcp is None:
        return Decision(
            Verdict.BLOCK,
            Reason.NOT_HTTP,
            message=f"the tunnel to {host}:{port} does not carry "
            f"HTTP(S), and no host block naming {host}:{port} says `allow tcp`",
            **base,
        )
    rule = block.tcp
    context: _Context = {**base, "host_block": block.source}
    return Decision(
        rule.verdict,
        Reason.RULE,
        rule=rule.source,
        rule_reason=rule.reason,
        message=_message(rule.verdict, Reason.RULE, rule.source),
        **context,
    )


def _resolved(policy: CompiledPolicy, request: Request, decision: Decision) -> Decision:
    """Step 2 for the addresses the destination resolves to, once steps 3-9 let the request through:
    refused if one is not public (and not exempt), partial (`needs_addresses`) if none were given
    for a name."""
    host = decision.host
    private = first_private(request.addresses)
    if private is not None and not exempt(policy, host, request.port, private):
        # The fields step 2 knows, as when an address literal is refused there.
        context: _Context = {
            "policy_sha256": decision.policy_sha256,
            "approval_timeout": decision.approval_timeout,
            "mode": policy.mode,
            "host": host,
        }
        return _private(host, request.port, private, context)
    if not request.addresses and not is_address(host):
        return replace(decision, needs_addresses=True)
    return decision


def _private(host: str, port: int, private: AddressClass, base: _Context) -> Decision:
    return Decision(
        Verdict.BLOCK,
        Reason.PRIVATE_ADDRESS,
        message=f"{host} is or resolves to the non-public address {private.address} ({private.why}); "
        f"a host block must name {host}:{port} exactly (a link-local address: as the address itself)",
        **base,
    )


def _report(decision: Decision) -> Decision:
    if decision.mode is not Mode.REPORT or decision.verdict is Verdict.ALLOW:
        return decision
    return replace(decision, verdict=Verdict.ALLOW, would=decision.verdict)


def _message(verdict: Verdict, reason: Reason, rule: RuleRef | None) -> str:
    where = f" at {rule.location}" if rule else ""
    if reason is Reason.RULE and rule is not None:  # a rule decided: it has a source
        return f"{verdict.value} by the rule{where}: {rule.text}"
    return f"no rule of the host block decides this request: the default is {verdict.value}{where}"
