"""Replaying recorded requests: how a candidate policy would decide them, beside the policy in force.

Pure: the caller reads the recorded requests (firewall/audit/replay.py) and hands each one here as a
`Recorded`; `Replay.add` decides it under both policies and classifies the change. The audit log
records the method, scheme, host, port, canonical path and query (credential-looking values masked)
and the agent, and of the headers, JSON body fields and `body.size` only those the conditions of
the request's host block read when it was decided (field_values.py: the `fields` column; rows
written before it have none); not the resolved addresses or the vault secrets a request carried.
A decision that depends on what was not recorded is UNKNOWN, never guessed:

- a rule's condition (or a limit's or budget's, where limits decide the class) reads a header, a
  JSON field or `body.size` that was not recorded (or was masked, or cut), or a masked query
  parameter, and the request reaches that rule: the condition is evaluated in three-valued logic
  with those fields unknown (replay_walk.py), so a rule that is ruled out by what was recorded
  (`agent == "ci" and header.x == "y"` for another agent) does not count;
- the row was refused for a cause that depends on unrecorded data and on the policy: a private
  address a host block may name exactly, a secret a policy may inject, a body with repeated keys.

The safety checks that do not depend on the policy (malformed request, unsafe method, invalid host,
destination mismatch, ambiguous path, method override) block under any policy: unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import StrEnum

from firewall.policy.compiled import CompiledPolicy
from firewall.policy.decision import Decision, Reason, Request, Verdict
from firewall.policy.engine import decide
from firewall.policy.hosts import is_address
from firewall.policy.replay_alike import SameBlocks, TargetsAlike
from firewall.policy.replay_walk import walk


class Change(StrEnum):
    ALLOW_TO_BLOCK = "allow_to_block"
    BLOCK_TO_ALLOW = "block_to_allow"
    NEWLY_HELD = "newly_held"  # allow or block → approve (held for a person)
    APPROVAL_TO_ALLOW = "approval_to_allow"
    APPROVAL_TO_BLOCK = "approval_to_block"
    NEWLY_LIMITED = "newly_limited"  # same verdict; the candidate counts it against a limit or budget the old did not
    UNKNOWN = "unknown"  # depends on what the audit log does not record
    UNCHANGED = "unchanged"


CHANGES = tuple(c for c in Change if c not in (Change.UNKNOWN, Change.UNCHANGED))

# Blocked whatever the policy says (engine steps 1-3): the candidate decides them as the old did.
POLICY_INDEPENDENT = frozenset(
    {
        Reason.MALFORMED_REQUEST,
        Reason.UNSAFE_METHOD,
        Reason.INVALID_HOST,
        Reason.DESTINATION_MISMATCH,
        Reason.AMBIGUOUS_PATH,
        Reason.METHOD_OVERRIDE,
    }
)
DEFAULT_RULE = "(default)"


@dataclass(frozen=True)
class Recorded:
    """One recorded request: what the audit row holds of it.

    `request` has no addresses, and of the headers and body only what gives the `fields` recorded
    their values; `masked` names the query parameters whose recorded value is masked; `reason` is the
    row's recorded reason.
    """

    request: Request
    reason: str = Reason.RULE
    masked: frozenset[str] = frozenset()
    fields: frozenset[str] = frozenset()  # header, JSON and body.size fields recorded exactly (`request` holds them)


@dataclass(frozen=True)
class Side:
    """What one policy decides of a recorded request."""

    verdict: Verdict
    rule: str  # the deciding rule's stable name, or DEFAULT_RULE
    would: Verdict | None = None
    unknown: str | None = None  # why the verdict depends on what was not recorded


@dataclass(frozen=True)
class Result:
    change: Change
    old: Side
    new: Side
    why: str | None = None  # for UNKNOWN: what was not recorded
    unknown_rule: str | None = None  # for UNKNOWN: the rule that reads it, when a rule does


@dataclass(frozen=True)
class Example:
    method: str
    url: str
    agent: str | None
    old: Side
    new: Side
    why: str | None


def _side(decision: Decision, unknown: str | None = None) -> Side:
    rule = decision.rule.id if decision.rule is not None else DEFAULT_RULE
    return Side(decision.verdict, rule, decision.would, unknown)


def replay_one(old: CompiledPolicy, new: CompiledPolicy, recorded: Recorded) -> Result:
    """How `new` decides a recorded request, against `old`."""
    request = recorded.request
    if recorded.reason in POLICY_INDEPENDENT:
        same = Side(Verdict.BLOCK, recorded.reason)
        return Result(Change.UNCHANGED, same, same)
    old_decision, new_decision = decide(old, request, 0.0), decide(new, request, 0.0)
    old_side, new_side = _side(old_decision), _side(new_decision)
    if old.sha256 == new.sha256:
        return Result(Change.UNCHANGED, old_side, new_side)
    why = _unrecorded_cause(old, new, recorded, old_decision, new_decision)
    if why == "":
        same = Side(Verdict.BLOCK, recorded.reason)
        return Result(Change.UNCHANGED, same, same)
    if why is not None:
        return Result(Change.UNKNOWN, old_side, new_side, why)
    masked, known = recorded.masked, recorded.fields
    old_walk = walk(old.block_for(old_decision.host, request.port), request, masked, known, old_decision)
    new_walk = walk(new.block_for(new_decision.host, request.port), request, masked, known, new_decision)
    for walked, name in ((old_walk, "the policy in force"), (new_walk, "the candidate")):
        if walked.unknown_rule is not None:
            why = f"the rule {walked.unknown_rule} of {name} reads a field the audit log does not record"
            return Result(Change.UNKNOWN, old_side, new_side, why, walked.unknown_rule)
    change = _verdict_change(old_side.verdict, new_side.verdict)
    if change is not Change.UNCHANGED or new_side.verdict is Verdict.BLOCK:
        return Result(change, old_side, new_side)
    old_any = old_walk.limits | old_walk.unknown_limits
    if new_walk.limits - old_any:
        return Result(Change.NEWLY_LIMITED, old_side, new_side)
    if new_walk.unknown_limits - old_any:
        why = "a limit or budget of the candidate reads a field the audit log does not record"
        return Result(Change.UNKNOWN, old_side, new_side, why)
    return Result(Change.UNCHANGED, old_side, new_side)


def _unrecorded_cause(
    old: CompiledPolicy,
    new: CompiledPolicy,
    recorded: Recorded,
    old_decision: Decision,
    new_decision: Decision,
) -> str | None:
    """Why the row's outcome depends on what was not recorded; "" when it was refused the same under both."""
    request = recorded.request
    host = new_decision.host or old_decision.host
    if recorded.reason == Reason.AMBIGUOUS_BODY:
        return "the request's body (refused: a repeated JSON key) was not recorded"
    if recorded.reason == Reason.EXFILTRATION:
        if not old_decision.inject and not new_decision.inject:
            return ""  # it carried a vault secret and neither policy injects one here: blocked by both
        return "which vault secrets the request carried was not recorded"
    names = (old.names_exactly(host, request.port), new.names_exactly(host, request.port))
    if recorded.reason == Reason.PRIVATE_ADDRESS:
        return "" if names == (False, False) else "the address the host resolved to was not recorded"
    if host and not is_address(host) and names == (True, False) and new_decision.verdict is not Verdict.BLOCK:
        # Only a host block naming host:port exactly lets a non-public address through: the row, let
        # through under a policy that names the host exactly, may have gone to one the candidate refuses.
        return (
            "the addresses the host resolved to were not recorded "
            "(the policy in force names it exactly, the candidate does not)"
        )
    return None


def _verdict_change(old: Verdict, new: Verdict) -> Change:
    if old is new:
        return Change.UNCHANGED
    if new is Verdict.APPROVE:
        return Change.NEWLY_HELD
    if old is Verdict.APPROVE:
        return Change.APPROVAL_TO_ALLOW if new is Verdict.ALLOW else Change.APPROVAL_TO_BLOCK
    return Change.ALLOW_TO_BLOCK if new is Verdict.BLOCK else Change.BLOCK_TO_ALLOW


@dataclass
class Replay:
    """Counts of recorded requests by change, and by rule and agent for each change; a few examples each.

    Requests repeat (an agent calls the same endpoints): each distinct recorded request is decided
    once: `add_counted` takes it with the number of rows that recorded it (the audit log groups
    them); `add` and `add_keyed` take one row at a time and reuse a result while the cache holds it.
    """

    old: CompiledPolicy
    new: CompiledPolicy
    examples_per_change: int = 3
    total: int = 0
    skipped: int = 0  # rows the policy did not decide (no agent credentials, a doctor probe, ...)
    counts: Counter[Change] = field(default_factory=Counter)
    by_rule: dict[Change, Counter[str]] = field(default_factory=dict)
    by_agent: dict[Change, Counter[str]] = field(default_factory=dict)
    examples: dict[Change, list[Example]] = field(default_factory=dict)
    _cache: dict[Hashable, Result] = field(default_factory=dict, repr=False)
    _same: SameBlocks | None = field(default=None, repr=False)
    _paths: TargetsAlike | None = field(default=None, repr=False)

    _CACHE_SIZE = 200_000

    def add(self, recorded: Recorded) -> Result | None:
        return self.add_keyed(recorded, lambda: recorded)

    def add_keyed(self, key: Hashable, make: Callable[[], Recorded], host: str = "", port: int = 0) -> Result | None:
        """Add the recorded request `make()` returns, whose fields `key` holds (the cache's key). With
        its `host` and `port` given, a destination both policies decide alike is counted unchanged at
        once, and `make` is not called (returns None)."""
        if host and self._alike(host, port):
            self._unchanged(1)
            return None
        result, recorded = self._decided(key, make)
        if result.change is Change.UNCHANGED:
            self._unchanged(1)
            return result
        recorded = recorded or make()
        return self._count(result, recorded.request.agent, 1, lambda: recorded)

    def _decided(self, key: Hashable, make: Callable[[], Recorded]) -> tuple[Result, Recorded | None]:
        """The cached result for `key`, or the request `make()` returns decided now (and returned)."""
        result = self._cache.get(key)
        if result is not None:
            return result, None
        if len(self._cache) >= self._CACHE_SIZE:
            self._cache.clear()
        recorded = make()
        result = self._cache[key] = replay_one(self.old, self.new, recorded)
        return result, recorded

    def add_counted(
        self,
        make: Callable[[], Recorded],
        count: int,
        *,
        agent: str | None,
        method: str,
        host: str,
        port: int,
        path: str,
        query: str,
        rest: Hashable,
    ) -> Result | None:
        """Add a recorded request that `count` rows recorded alike (firewall/audit/replay.py groups
        them), of which `rest` holds every field but those named. Decided once with the requests
        that differ from it only in a target both policies decide alike (replay_alike.TargetsAlike),
        counted `count` times, shown as one example. A destination both policies decide alike is
        counted unchanged at once, and `make` is not called (returns None)."""
        if self._alike(host, port):
            self._unchanged(count)
            return None
        if self._paths is None:
            self._paths = TargetsAlike(self.old, self.new)
        key = (agent, method, host, port, self._paths(host, port, method, path, query), rest)
        result, recorded = self._decided(key, make)
        if result.change is Change.UNCHANGED:
            self._unchanged(count)
            return result
        return self._count(result, agent, count, lambda: recorded or make(), distinct=True)

    def _alike(self, host: str, port: int) -> bool:
        if self._same is None:
            self._same = SameBlocks(self.old, self.new)
        return self._same(host, port)

    def _unchanged(self, count: int) -> None:
        self.total += count
        self.counts[Change.UNCHANGED] += count

    def _count(
        self, result: Result, agent: str | None, count: int, recorded: Callable[[], Recorded], distinct: bool = False
    ) -> Result:
        self.total += count
        change = result.change
        self.counts[change] += count
        rule = result.unknown_rule or (result.new.rule if result.new.rule != DEFAULT_RULE else result.old.rule)
        self.by_rule.setdefault(change, Counter())[rule] += count
        self.by_agent.setdefault(change, Counter())[agent or "-"] += count
        shown = self.examples.setdefault(change, [])
        if len(shown) < self.examples_per_change:
            example = _example(recorded().request, result)
            if not distinct or example not in shown:  # a request counted again (a later chunk of rows)
                shown.append(example)
        return result

    def skip(self, count: int = 1) -> None:
        self.skipped += count

    @property
    def changed(self) -> int:
        return sum(self.counts[c] for c in CHANGES)


def _example(request: Request, result: Result) -> Example:
    if request.scheme == "tcp":
        url = f"tcp://{request.host}:{request.port}"
    else:
        default = 443 if request.scheme == "https" else 80
        port = "" if request.port == default else f":{request.port}"
        url = f"{request.scheme}://{request.host}{port}{request.target}"
    return Example(request.method, url, request.agent, result.old, result.new, result.why)
