"""The three-valued walk of one host block for `policy replay` (replay.py): what the fields the audit
log recorded say of a request, with the fields it did not record unknown.

Which rule decides (or that the first rule reached reads an unrecorded field, so nobody can say),
and which limits and budgets count the request (or may, depending on an unrecorded field). Walked
only in host blocks whose conditions read a header, JSON or body.size field that was not recorded
(or a query parameter whose value was masked): elsewhere the engine's own answer is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from firewall.policy.compiled import CompiledBlock, Cond, FieldRef, RequestMatcher, fields_in
from firewall.policy.conditions import UNREADABLE, RequestView, evaluate
from firewall.policy.decision import Decision, Request, Verdict
from firewall.policy.paths import AmbiguousPath, canonicalize
from firewall.policy.replay_alike import normalized_host

_UNRECORDED_KINDS = frozenset({"header", "json", "body.size"})


@dataclass(eq=False)
class _RecordedView(RequestView):
    """The fields conditions read, with the ones the audit log does not record unreadable."""

    masked: frozenset[str]  # query parameters whose recorded value was masked
    known: frozenset[str]  # header, JSON and body.size fields recorded exactly

    def unrecorded(self, field: FieldRef) -> bool:
        if field.kind in _UNRECORDED_KINDS:
            return field.text not in self.known
        return field.kind == "query" and field.key[0] in self.masked

    def value(self, field: FieldRef) -> object:
        return UNREADABLE if self.unrecorded(field) else super().value(field)


def _depends(cond: Cond | None, view: _RecordedView) -> bool:
    """Whether `cond` reads a field the audit log did not record for this request."""
    return any(view.unrecorded(field) for field in fields_in(cond))


def _applies(match: RequestMatcher, method: str, view: _RecordedView) -> bool | None:
    """Whether a rule, limit or budget applies: True, False, or None when that depends on what was not recorded."""
    if not match.matches_method_and_path(method, view.path):
        return False
    return True if match.when is None else evaluate(match.when, view)


@dataclass(frozen=True)
class Walk:
    """What the recorded fields alone say of a request under one policy's host block."""

    unknown_rule: str | None  # the first rule reached whose condition reads an unrecorded field
    limits: frozenset[str]  # keys of the limits and budgets that apply
    unknown_limits: frozenset[str]  # keys of those whose application is unknown


_NO_WALK = Walk(None, frozenset(), frozenset())


_READS: dict[int, tuple[CompiledBlock, frozenset[str], bool]] = {}  # by id: hashing a block hashes all it holds


def _reads_unrecorded(block: CompiledBlock, masked: frozenset[str], known: frozenset[str]) -> bool:
    """Whether a rule, limit or budget of `block` reads a header, JSON or body.size field that was not
    recorded for this request (or, when some query values were masked, a query parameter)."""
    found = _READS.get(id(block))
    if found is None or found[0] is not block:
        read = [field for match in block.matchers() for field in fields_in(match.when)]
        unrecorded = frozenset(field.text for field in read if field.kind in _UNRECORDED_KINDS)
        query = any(field.kind == "query" for field in read)
        if len(_READS) > 4096:
            _READS.clear()
        found = _READS[id(block)] = (block, unrecorded, query)  # the block kept alive: its id is not reused
    _, fields, reads_query = found
    return bool(fields - known) or (bool(masked) and reads_query)


def walk(
    block: CompiledBlock | None,
    request: Request,
    masked: frozenset[str],
    known: frozenset[str],
    decision: Decision,
) -> Walk:
    """What the recorded fields alone say of `request` (the query parameters `masked`, the fields
    `known`) under `block`, where the engine's `decision` was made."""
    if block is None or request.scheme == "tcp":
        return _NO_WALK
    if not _reads_unrecorded(block, masked, known):  # the engine's own answer is exact
        keys = [limit.key for limit in decision.limits] + [budget.key for budget in decision.budgets]
        return Walk(None, frozenset(keys), frozenset())
    host = normalized_host(request.host)
    try:
        canonical = canonicalize(request.target)
    except AmbiguousPath:
        return _NO_WALK  # the engine blocks it before any rule (a safety check)
    if host is None:
        return _NO_WALK
    view = _RecordedView(request, host, canonical.path, canonical.query, masked, known)
    unknown_rule = None
    for rule in block.rules_for(request.method):
        applies = _applies(rule.match, request.method, view)
        if applies is None:
            if _depends(rule.match.when, view):
                unknown_rule = rule.source.id
                break
            applies = rule.verdict is not Verdict.ALLOW  # unknown from what was recorded: the engine fails closed
        if applies:
            break
    counts: set[str] = set()
    unsure: set[str] = set()
    counted = [(limit.key, limit.match) for limit in block.limits]
    counted += [(budget.key, budget.match) for budget in block.budgets]
    for key, match in counted:
        applies = _applies(match, request.method, view)
        if applies is None and _depends(match.when, view):
            unsure.add(key)
        elif applies is not False:  # True, or unknown from what was recorded: a limit counts it
            counts.add(key)
    return Walk(unknown_rule, frozenset(counts), frozenset(unsure))
