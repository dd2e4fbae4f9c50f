"""The compiled policy: immutable, serialisable to canonical JSON, content-addressed.

Everything `decide()` needs and nothing else. Fields marked `derived` (compiled
regexes, lookup indexes) are rebuilt from the others and never serialised, so
the JSON — and its sha256 — says exactly what the policy decides.

Several classes have the fields of a syntax node (syntax.py: InList and InCond, Inject and
CompiledInject). They are not built from the nodes on purpose: a compiled value is normalised
(hosts, methods, flattened and/or) and carries a RuleRef, not a span, and the JSON of these
classes is the policy's identity, so a change to the syntax tree must not change a stored hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from enum import Enum
from fnmatch import translate
from functools import cache, lru_cache
from typing import Any, cast

from firewall.policy.compiled_json import FORMAT_VERSION, CredentialUse
from firewall.policy.decision import Mode, RuleRef, Verdict
from firewall.policy.hosts import HostIndex, parse_host_pattern
from firewall.policy.paths import PathGlob, compile_glob

Scalar = str | int | float | bool | None


@lru_cache(maxsize=16384)
def path_glob(text: str) -> PathGlob:
    """`compile_glob`, once per distinct glob: globs are immutable and policies repeat them."""
    return compile_glob(text)


def derived() -> Any:
    """A field computed in __post_init__: not an argument, not compared, not serialised.
    (Any, as `dataclasses.field` itself is typed: the field's annotation gives its type.)"""
    return field(init=False, repr=False, compare=False, metadata={"derived": True})


# ---- conditions -------------------------------------------------------------


@dataclass(frozen=True)
class FieldRef:
    """A request field a condition reads: kind is agent, method, path, host,
    query, header, json or body.size; key is the rest of the dotted name."""

    kind: str
    key: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return ".".join((self.kind, *self.key)) if self.key else self.kind


@dataclass(frozen=True)
class CompareCond:
    field: FieldRef
    op: str
    value: Scalar


@dataclass(frozen=True)
class InCond:
    field: FieldRef
    values: tuple[Scalar, ...]
    negated: bool


@dataclass(frozen=True)
class MatchCond:
    field: FieldRef
    pattern: str
    regex: re.Pattern[str] = derived()

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(translate(self.pattern), re.DOTALL))


@dataclass(frozen=True)
class AllCond:
    items: tuple[Cond, ...]


@dataclass(frozen=True)
class AnyCond:
    items: tuple[Cond, ...]


@dataclass(frozen=True)
class NotCond:
    item: Cond


Cond = CompareCond | InCond | MatchCond | AllCond | AnyCond | NotCond


def fields_in(cond: Cond | None) -> Iterator[FieldRef]:
    """The field of each comparison in `cond`, in order (a field compared twice comes twice)."""
    if cond is None:
        return
    if isinstance(cond, NotCond):
        yield from fields_in(cond.item)
    elif isinstance(cond, (AllCond, AnyCond)):
        for item in cond.items:
            yield from fields_in(item)
    else:
        yield cond.field


# ---- host blocks ------------------------------------------------------------


@dataclass(frozen=True)
class RequestMatcher:
    """Methods (empty: any), path globs (empty: any) and an optional condition."""

    methods: tuple[str, ...]
    paths: tuple[str, ...]
    when: Cond | None
    method_set: frozenset[str] = derived()
    globs: tuple[PathGlob, ...] = derived()
    prefixes: tuple[str, ...] = derived()  # a path any glob matches starts with one of these

    def __post_init__(self) -> None:
        object.__setattr__(self, "method_set", frozenset(self.methods))
        object.__setattr__(self, "globs", tuple(path_glob(p) for p in self.paths))
        object.__setattr__(self, "prefixes", tuple(_literal_prefix(p) for p in self.paths))

    def matches_method_and_path(self, method: str, path: str) -> bool:
        if self.method_set and method not in self.method_set:
            return False
        if not self.globs:
            return True
        if not path.startswith(self.prefixes):  # one C call rules out most paths
            return False
        for glob in self.globs:
            if glob.matches(path):
                return True
        return False


def _literal_prefix(glob: str) -> str:
    """What every path the glob matches starts with: the text before its first "*",
    less a trailing "/" ("/v1/**" matches "/v1", and "/v1/models/" "/v1/models")."""
    star = glob.find("*")
    return (glob if star < 0 else glob[:star]).rstrip("/")


@dataclass(frozen=True)
class CompiledRule:
    verdict: Verdict
    match: RequestMatcher
    reason: str | None
    source: RuleRef


@dataclass(frozen=True)
class CompiledLimit:
    key: str
    amount: int
    period: str
    per_agent: bool
    match: RequestMatcher
    source: RuleRef


@dataclass(frozen=True)
class CompiledBudget:
    """A budget counted from the answers: `amount` tokens, or millionths of a dollar for "usd"."""

    key: str
    amount: int
    measure: str  # usd | tokens | input_tokens | output_tokens | cached_tokens
    period: str  # hour | day | week | month: calendar windows in UTC
    per_agent: bool
    match: RequestMatcher
    source: RuleRef
    reserve: bool = False  # `reserve max_tokens`: count the request's max_tokens before it goes out


@dataclass(frozen=True)
class ModelPrice:
    """A policy's `price` line: dollars per million tokens (cached: input read from the cache)."""

    model: str
    input: float
    cached: float
    output: float
    source: RuleRef


@dataclass(frozen=True)
class CompiledInject:
    credential: str
    when: Cond | None
    source: RuleRef


@dataclass(frozen=True)
class CredentialSpec:
    """How a vault entry travels: kind is header, query or oauth."""

    name: str
    secret: str
    kind: str
    target: str  # header or query parameter name; "" for oauth
    template: str  # with "{secret}"; "" for oauth
    settings: tuple[tuple[str, str], ...]
    source: RuleRef


@dataclass(frozen=True)
class CompiledBlock:
    patterns: tuple[str, ...]
    rules: tuple[CompiledRule, ...]
    limits: tuple[CompiledLimit, ...]
    injects: tuple[CompiledInject, ...]
    source: RuleRef
    tcp: CompiledRule | None = None  # `allow tcp` / `block tcp`: a tunnel that does not carry HTTP
    budgets: tuple[CompiledBudget, ...] = ()
    unreadable_usage: str = "max_tokens"  # `usage unreadable max_tokens | refuse`
    mode: Mode | None = None  # the block's own `mode` line; None: the policy's mode
    rules_by_method: dict[str, tuple[CompiledRule, ...]] = derived()  # method → the rules that may match it, in order
    rules_any_method: tuple[CompiledRule, ...] = derived()  # the rules that name no method, in order

    def __post_init__(self) -> None:
        named = {method for rule in self.rules for method in rule.match.methods}
        by_method = {
            method: tuple(r for r in self.rules if not r.match.method_set or method in r.match.method_set)
            for method in named
        }
        object.__setattr__(self, "rules_by_method", by_method)
        object.__setattr__(self, "rules_any_method", tuple(r for r in self.rules if not r.match.method_set))

    def rules_for(self, method: str) -> tuple[CompiledRule, ...]:
        """The rules whose methods allow `method`, in policy order (the others cannot match)."""
        return self.rules_by_method.get(method, self.rules_any_method)

    def matchers(self) -> list[RequestMatcher]:
        """What its rules, limits and budgets match, in that order (its tcp rule reads no request)."""
        return [
            *(rule.match for rule in self.rules),
            *(limit.match for limit in self.limits),
            *(budget.match for budget in self.budgets),
        ]

    def conditions(self) -> list[Cond | None]:
        """The `when` of each of its rules, limits, budgets and inject lines (None: it has none)."""
        return [match.when for match in self.matchers()] + [line.when for line in self.injects]


@dataclass(frozen=True)
class SourceFile:
    path: str
    sha256: str


@dataclass(frozen=True)
class CompiledPolicy:
    default: Verdict
    default_source: RuleRef | None
    mode: Mode
    approval_timeout: float
    credentials: tuple[CredentialSpec, ...]
    blocks: tuple[CompiledBlock, ...]
    sources: tuple[SourceFile, ...]
    prices: tuple[ModelPrice, ...] = ()  # `price` lines: override the shipped table (firewall/budgets/prices.py)
    host_index: HostIndex[CompiledBlock] = derived()
    exact_hosts: frozenset[tuple[str, int]] = derived()  # (name, port) named by a pattern without a wildcard
    credential_map: dict[str, CredentialSpec] = derived()
    sha256: str = derived()

    def __post_init__(self) -> None:
        entries = [(parse_host_pattern(p), block) for block in self.blocks for p in block.patterns]
        object.__setattr__(self, "host_index", HostIndex(entries))
        exact = {(p.name, port) for p, _ in entries if not p.wildcard for port in p.ports()}
        object.__setattr__(self, "exact_hosts", frozenset(exact))
        object.__setattr__(self, "credential_map", {c.name: c for c in self.credentials})
        object.__setattr__(self, "sha256", hashlib.sha256(self.to_json().encode()).hexdigest())

    def block_for(self, host: str, port: int) -> CompiledBlock | None:
        return self.host_index.lookup(host, port)

    def names_exactly(self, host: str, port: int) -> bool:
        return (host, port) in self.exact_hosts

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no whitespace; equal policies give equal text."""
        data = {"format": FORMAT_VERSION, "policy": _to_data(self)}
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> CompiledPolicy:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
            raise ValueError(f"compiled policy format {data.get('format')!r} is not {FORMAT_VERSION}")
        policy = _from_data(data["policy"])
        if not isinstance(policy, cls):
            raise ValueError("compiled policy JSON does not hold a policy")
        return policy

    def rule_refs(self) -> tuple[RuleRef, ...]:
        """Every rule that can decide a request (host blocks' rules and tcp rules, the default line)."""
        refs = [rule.source for block in self.blocks for rule in (*block.rules, block.tcp) if rule is not None]
        if self.default_source is not None:
            refs.append(self.default_source)
        return tuple(refs)

    def secrets(self) -> tuple[str, ...]:
        """Vault entries this policy needs, in order of first use."""
        return tuple(dict.fromkeys(c.secret for c in self.credentials))

    def credential_uses(self) -> tuple[CredentialUse, ...]:
        """Each credential's name, vault entry and kind: what compiled_json reads from the JSON."""
        return tuple(CredentialUse(c.name, c.secret, c.kind) for c in self.credentials)


# ---- serialisation ----------------------------------------------------------

_TYPES: dict[str, type] = {  # the JSON names the class; its constructor gets what the JSON holds
    cls.__name__: cls
    for cls in (
        FieldRef,
        CompareCond,
        InCond,
        MatchCond,
        AllCond,
        AnyCond,
        NotCond,
        RequestMatcher,
        CompiledRule,
        CompiledLimit,
        CompiledBudget,
        ModelPrice,
        CompiledInject,
        CredentialSpec,
        CompiledBlock,
        SourceFile,
        CompiledPolicy,
        RuleRef,
    )
}
_ENUMS = {"verdict": Verdict, "default": Verdict, "mode": Mode}


_NO_DEFAULT = object()


@cache
def _serialised_fields(cls: type) -> tuple[tuple[str, object], ...] | None:
    """(name, default) of the fields of a dataclass that go into JSON; None for any other type.

    A field added after policies were stored has a default, and is left out of the JSON while it
    holds it: a policy that does not use it keeps the canonical JSON, and so the sha256, it had.
    """
    if not is_dataclass(cls):
        return None
    return tuple(
        (f.name, _NO_DEFAULT if f.default is MISSING else f.default)
        for f in fields(cls)
        if not f.metadata.get("derived")
    )


def _to_data(obj: object) -> object:
    cls: type = type(obj)  # as `type`: mypy does not see a class object of type[object] as Hashable
    names = _serialised_fields(cls)
    if names is not None:
        out: dict[str, object] = {"type": type(obj).__name__}
        for name, default in names:
            value = getattr(obj, name)
            if default is not _NO_DEFAULT and value == default:
                continue
            out[name] = _to_data(value)
        return out
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (tuple, list)):
        return [_to_data(item) for item in obj]
    return obj


def _from_data(data: object, name: str = "") -> object:
    if isinstance(data, dict):
        cls = _TYPES[data["type"]]
        kwargs = {
            name: _from_data(data[name], name)
            for name, default in _serialised_fields(cls) or ()  # every class in _TYPES is a dataclass
            if default is _NO_DEFAULT or name in data
        }
        return cls(**kwargs)
    if isinstance(data, list):
        return tuple(_from_data(item) for item in data)
    if name in _ENUMS and data is not None:
        # cast: JSON holds an enum's value as text; any other value still fails in the Enum call
        return _ENUMS[name](cast(str, data))
    return data
