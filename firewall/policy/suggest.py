"""Proposing rules from what agents did: the smallest `allow` rules that let through the requests a
person approved, or that the default refused again and again, and nothing more.

Pure: the caller reads the audit log (firewall/audit/suggest.py) and hands each row here as an
`Observed` (the vocabulary is suggest_model.py); `propose` decides each one again under the policy
in force and groups what it would still refuse or hold into rules, by host block. Anchors: NVIDIA
OpenShell's policy advisor (a proposal per host, reviewed by a person, never applied by itself) and
pipelock's learn-and-lock (counts as floors, sensitive path segments never folded).

What a rule may cover, and where it goes, is what keeps it from widening the policy:

- a request the policy's default decides (no host block, or no rule of its block): the rule goes at
  the end of that block (no rule above it is bypassed) or in a new block naming the host and port;
- a request an `approve` rule held and a person let through: the rule goes just before that rule,
  with its condition, and its paths within that rule's paths: it decides nothing the rule did not;
- a rule in a block that names more than this host (a wildcard, several patterns) says
  `when host == "..."`; with `agents`, `when agent ...` for the agents seen;
- paths are the paths seen; a `*` segment only where `min_shared` distinct values were seen
  (suggest_globs.py); never `**`, and any path only when asked (`whole_host`);
- a request refused by a person, the exfiltration guard or a safety check is never proposed, and no
  glob covers its path; a request already allowed, or decided now by another rule, is left alone;
- a default-refused request seen fewer than `min_count` times (a one-off) gets no rule.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from firewall.policy.compiled import (
    AllCond,
    AnyCond,
    CompareCond,
    CompiledPolicy,
    CompiledRule,
    Cond,
    InCond,
    MatchCond,
    NotCond,
)
from firewall.policy.decision import Reason, Request, Verdict
from firewall.policy.engine import decide
from firewall.policy.hosts import InvalidHost, parse_host_pattern
from firewall.policy.replay_alike import normalized_host
from firewall.policy.suggest_globs import generalize, glob_matches, writable
from firewall.policy.suggest_model import (
    SKIP_WHY,
    Observed,
    Options,
    Placement,
    Proposal,
    Seen,
    Suggestion,
    Where,
)

# The vocabulary lives in suggest_model.py; callers import it from here too.
__all__ = [
    "SKIP_WHY",
    "Observed",
    "Options",
    "Placement",
    "Proposal",
    "Seen",
    "Suggestion",
    "Where",
    "condition_text",
    "propose",
]


_DEFAULTS = Options()

# (seen, method, scheme, host, port, path, agent, rule): one kind of request, counted once per row
_Key = tuple[Seen, str, str, str, int, str, str | None, str | None]


@dataclass
class _Tally:
    count: int = 0
    approved: int = 0
    agents: Counter[str | None] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)


def _url(o: Observed, host: str) -> str:
    default = 443 if o.scheme == "https" else 80
    name = f"[{host}]" if ":" in host else host
    port = "" if o.port == default else f":{o.port}"
    return f"{o.method} {o.scheme}://{name}{port}{o.path}" + (f"?{o.query}" if o.query else "")


def propose(policy: CompiledPolicy, observed: Iterable[Observed], options: Options = _DEFAULTS) -> Proposal:
    """The rules that would let through what `observed` says was approved or repeatedly refused by default."""
    skipped: Counter[str] = Counter()
    refused: dict[tuple[str, str], set[str]] = {}  # (host, method) → paths that must stay refused
    tallies: dict[_Key, _Tally] = {}
    read = 0
    for o in observed:
        read += 1
        host = normalized_host(o.host)
        if host is None:
            skipped["not_writable"] += 1
            continue
        if o.seen is Seen.REFUSED:
            refused.setdefault((host, o.method), set()).add(o.path)
            skipped["refused"] += 1
            continue
        if options.agents and o.agent not in options.agents:
            skipped["other_agents"] += 1
            continue
        key: _Key = (o.seen, o.method, o.scheme, host, o.port, o.path, o.agent, o.rule)
        tally = tallies.setdefault(key, _Tally())
        tally.count += 1
        tally.agents[o.agent] += 1
        if len(tally.examples) < 3:
            tally.examples.append(_url(o, host))
    # (placement, host, method) → path → tally of the requests seen there
    groups: dict[tuple[Placement, str, str], dict[str, _Tally]] = {}
    ports: dict[str, set[int]] = {}
    for (seen, method, scheme, host, port, path, agent, rule), tally in tallies.items():
        placement = _placement(policy, seen, method, scheme, host, port, path, agent, rule)
        if isinstance(placement, str):
            skipped[placement] += tally.count
            continue
        if (host, method) in refused and path in refused[(host, method)]:
            skipped["refused"] += tally.count
            continue
        if not writable(path):
            skipped["not_writable"] += tally.count
            continue
        ports.setdefault(host, set()).add(port)
        merged = groups.setdefault((placement, host, method), {}).setdefault(path, _Tally())
        merged.count += tally.count
        merged.approved += tally.count if seen is Seen.APPROVED else 0
        merged.agents.update(tally.agents)
        merged.examples.extend(tally.examples[: 3 - len(merged.examples)])
    rules: list[tuple[Placement, str, str | None, str | None, _Tally]] = []
    for (placement, host, method), paths in groups.items():
        placement = _named_ports(placement, host, ports[host])
        for glob, tally in _globs(policy, placement, host, method, paths, refused, options):
            if not tally.approved and tally.count < options.min_count:
                skipped["too_few"] += tally.count
                continue
            rules.append((placement, method, glob, _condition(policy, placement, host, tally, options), tally))
    return Proposal(_merge_methods(rules), read, dict(skipped))


def _placement(
    policy: CompiledPolicy,
    seen: Seen,
    method: str,
    scheme: str,
    host: str,
    port: int,
    path: str,
    agent: str | None,
    rule: str | None,
) -> Placement | str:
    """Where a rule for this request goes, or why there is none (a key of SKIP_WHY)."""
    decision = decide(policy, Request(method, scheme, host, port, path, agent=agent), 0.0)
    verdict = decision.would or decision.verdict
    if verdict is Verdict.ALLOW:
        return "already_allowed"
    if scheme not in ("http", "https"):
        return "not_writable"
    if decision.reason is Reason.DEFAULT_NO_HOST:
        return Placement(Where.NEW_BLOCK, (_pattern(host, port),))
    block = policy.block_for(decision.host, port)
    if block is None:
        return "decided_otherwise"
    patterns = block.patterns
    if decision.reason is Reason.DEFAULT_NO_RULE:
        return Placement(Where.BLOCK_END, patterns, block.source)
    held = decision.rule
    if (
        decision.reason is Reason.RULE
        and verdict is Verdict.APPROVE
        and seen is Seen.APPROVED
        and held is not None
        and held.id == rule
    ):
        return Placement(Where.BEFORE_RULE, patterns, block.source, held)
    return "decided_otherwise"


def _pattern(host: str, port: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return f"{name}:{port}"


def _named_ports(placement: Placement, host: str, seen: set[int]) -> Placement:
    """A new block names the port seen; ports 80 and 443 both seen: the host alone (which names both)."""
    if placement.where is Where.NEW_BLOCK and seen >= {80, 443}:
        name = f"[{host}]" if ":" in host else host
        return Placement(Where.NEW_BLOCK, (name,))
    return placement


def _globs(
    policy: CompiledPolicy,
    placement: Placement,
    host: str,
    method: str,
    paths: dict[str, _Tally],
    refused: dict[tuple[str, str], set[str]],
    options: Options,
) -> list[tuple[str | None, _Tally]]:
    stays_refused = refused.get((host, method), set())
    held_by = _rule(policy, placement)

    def allowed(glob: str) -> bool:
        if any(glob_matches(glob, path) for path in stays_refused):
            return False
        # Before an approve rule: only paths that rule holds (the glob itself, read as a path, is one).
        return held_by is None or held_by.match.matches_method_and_path(method, glob)

    if options.whole_host and held_by is None and not stays_refused:
        return [(None, _sum(paths.values()))]
    return [
        (covered.glob, _sum(paths[p] for p in covered.paths))
        for covered in generalize(paths, options.min_shared, allowed)
    ]


def _sum(tallies: Iterable[_Tally]) -> _Tally:
    out = _Tally()
    for tally in tallies:
        out.count += tally.count
        out.approved += tally.approved
        out.agents.update(tally.agents)
        out.examples.extend(tally.examples[: max(0, 3 - len(out.examples))])
    return out


def _rule(policy: CompiledPolicy, placement: Placement) -> CompiledRule | None:
    if placement.before is None:
        return None
    for block in policy.blocks:
        for rule in block.rules:
            if rule.source == placement.before:
                return rule
    return None


def _condition(policy: CompiledPolicy, placement: Placement, host: str, tally: _Tally, options: Options) -> str | None:
    parts = []
    if placement.where is not Where.NEW_BLOCK and not _names_only(placement.patterns, host):
        parts.append(f"host == {json.dumps(host)}")
    if options.agents:
        agents = sorted(a for a in tally.agents if a is not None)
        if len(agents) == 1:
            parts.append(f"agent == {json.dumps(agents[0])}")
        else:
            parts.append(f"agent in [{', '.join(json.dumps(a) for a in agents)}]")
    held_by = _rule(policy, placement)
    if held_by is not None and held_by.match.when is not None:
        parts.append(condition_text(held_by.match.when, nested=bool(parts)))
    return " and ".join(parts) or None


def _names_only(patterns: tuple[str, ...], host: str) -> bool:
    """Whether a block's patterns name `host` and no other host."""
    if len(patterns) != 1:
        return False
    try:
        pattern = parse_host_pattern(patterns[0])
    except InvalidHost:
        return False
    return not pattern.wildcard and pattern.name == host


def condition_text(cond: Cond, nested: bool = False) -> str:
    """A compiled condition in the policy language (parenthesised when `nested` and it needs it)."""
    if isinstance(cond, CompareCond):
        return f"{cond.field.text} {cond.op} {_literal(cond.value)}"
    if isinstance(cond, InCond):
        values = ", ".join(_literal(v) for v in cond.values)
        return f"{cond.field.text} {'not in' if cond.negated else 'in'} [{values}]"
    if isinstance(cond, MatchCond):
        return f"{cond.field.text} matches {json.dumps(cond.pattern)}"
    if isinstance(cond, NotCond):
        return f"not {condition_text(cond.item, nested=True)}"
    joiner = " and " if isinstance(cond, AllCond) else " or "
    assert isinstance(cond, (AllCond, AnyCond))
    text = joiner.join(condition_text(item, nested=True) for item in cond.items)
    return f"({text})" if nested else text


def _literal(value: object) -> str:
    return json.dumps(value)


def _merge_methods(rules: list[tuple[Placement, str, str | None, str | None, _Tally]]) -> tuple[Suggestion, ...]:
    """One rule for the methods that share a place, paths and condition: `allow GET, HEAD /x`."""
    merged: dict[tuple[Placement, str | None, str | None], tuple[list[str], _Tally]] = {}
    for placement, method, glob, condition, tally in rules:
        methods, total = merged.setdefault((placement, glob, condition), ([], _Tally()))
        methods.append(method)
        total.count += tally.count
        total.approved += tally.approved
        total.agents.update(tally.agents)
        total.examples.extend(tally.examples[: max(0, 3 - len(total.examples))])
    out = [
        Suggestion(
            placement,
            tuple(sorted(set(methods))),
            glob,
            condition,
            total.count,
            total.approved,
            tuple(sorted(total.agents, key=lambda a: a or "")),
            tuple(total.examples),
        )
        for (placement, glob, condition), (methods, total) in merged.items()
    ]
    return tuple(sorted(out, key=_order))


def _order(s: Suggestion) -> tuple[object, ...]:
    block = s.placement.block
    return (
        block is None,
        (block.file, block.line) if block else ("", 0),
        s.placement.patterns,
        s.placement.before.line if s.placement.before else 1 << 30,
        s.glob or "",
        s.methods,
    )
