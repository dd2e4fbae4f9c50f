"""The syntax tree of a policy file: frozen dataclasses named after the grammar rules.

These only carry shape and source spans. What the nodes mean, and whether
that meaning is valid, is the compiler's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from firewall.policy.errors import Span

JsonValue = dict[str, object] | list[object] | str | int | float | bool | None
Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Word:
    """A token whose text matters (a method, a path glob, a host pattern, a name)."""

    text: str
    span: Span


@dataclass(frozen=True)
class Value[T: Scalar]:
    """A literal and where it is: `Value[str]` where the grammar allows only a string."""

    value: T
    span: Span


# ---- conditions -------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    field: Word
    op: str  # == != < <= > >=
    value: Value[Scalar]
    span: Span


@dataclass(frozen=True)
class InList:
    field: Word
    values: tuple[Value[Scalar], ...]
    negated: bool
    span: Span


@dataclass(frozen=True)
class Matches:
    field: Word
    pattern: Value[str]
    span: Span


@dataclass(frozen=True)
class And:
    left: Condition
    right: Condition
    span: Span


@dataclass(frozen=True)
class Or:
    left: Condition
    right: Condition
    span: Span


@dataclass(frozen=True)
class Not:
    operand: Condition
    span: Span


Condition = Compare | InList | Matches | And | Or | Not


# ---- top-level statements ---------------------------------------------------


@dataclass(frozen=True)
class DefaultStmt:
    verdict: str
    span: Span


@dataclass(frozen=True)
class ModeStmt:
    """`mode enforce` / `mode report`: the policy's mode, or inside a host block that block's own."""

    mode: str
    span: Span


@dataclass(frozen=True)
class ApprovalTimeoutStmt:
    duration: Word
    span: Span


@dataclass(frozen=True)
class SecretLine:
    entry: Value[str]
    span: Span


@dataclass(frozen=True)
class HeaderLine:
    header: Word
    template: Value[str]
    span: Span


@dataclass(frozen=True)
class QueryLine:
    parameter: Word
    template: Value[str]
    span: Span


@dataclass(frozen=True)
class OAuthLine:
    span: Span


@dataclass(frozen=True)
class OAuthSetting:
    key: str
    value: Value[str]
    span: Span


CredentialLine = SecretLine | HeaderLine | QueryLine | OAuthLine | OAuthSetting


@dataclass(frozen=True)
class Credential:
    name: Word
    lines: tuple[CredentialLine, ...]
    span: Span


@dataclass(frozen=True)
class Inject:
    credential: Word
    when: Condition | None
    span: Span


@dataclass(frozen=True)
class Limit:
    amount: Word
    unit: str
    per_agent: bool
    methods: tuple[Word, ...]
    paths: tuple[Word, ...]
    when: Condition | None
    span: Span


@dataclass(frozen=True)
class Budget:
    """`limit 2000000 tokens per day per agent`, `limit $20 per day`: counted from the answers.

    `measure` is "usd" (amount in dollars, as written) or "tokens", "input_tokens",
    "output_tokens", "cached_tokens"."""

    amount: Word
    measure: str
    unit: Word
    per_agent: bool
    reserve: bool
    methods: tuple[Word, ...]
    paths: tuple[Word, ...]
    when: Condition | None
    span: Span


@dataclass(frozen=True)
class UsageSetting:
    """`usage unreadable max_tokens | refuse`: what an answer whose usage cannot be read counts."""

    action: str
    span: Span


@dataclass(frozen=True)
class Rule:
    verdict: str
    methods: tuple[Word, ...]
    paths: tuple[Word, ...]
    when: Condition | None
    reason: Value[str] | None
    span: Span
    name: Value[str] | None = None  # `as "name"`


@dataclass(frozen=True)
class TcpRule:
    """`allow tcp` / `block tcp`: what a CONNECT tunnel that does not carry HTTP may do."""

    verdict: str
    reason: Value[str] | None
    span: Span
    name: Value[str] | None = None


HostItem = Inject | Limit | Budget | UsageSetting | Rule | TcpRule | ModeStmt


@dataclass(frozen=True)
class HostBlock:
    patterns: tuple[Word, ...]
    items: tuple[HostItem, ...]
    span: Span


@dataclass(frozen=True)
class Expect:
    expected: str  # allow | block | approve | limit
    method: Word
    url: Word
    agent: Value[str] | None
    json_body: JsonValue
    has_json: bool
    headers: tuple[Value[str], ...]
    after: Word | None
    span: Span


@dataclass(frozen=True)
class TestBlock:
    name: Value[str]
    expects: tuple[Expect, ...]
    span: Span


@dataclass(frozen=True)
class PricePart:
    kind: str  # input | cached | output
    amount: Word  # "$0.15": dollars per million tokens
    span: Span


@dataclass(frozen=True)
class PriceStmt:
    """`price "gpt-4o-mini" input $0.15 cached $0.075 output $0.60`."""

    model: Value[str]
    parts: tuple[PricePart, ...]
    span: Span


Statement = DefaultStmt | ModeStmt | ApprovalTimeoutStmt | PriceStmt | Credential | HostBlock | TestBlock


@dataclass(frozen=True)
class Comment:
    text: str
    line: int
    column: int


@dataclass(frozen=True)
class PolicyFile:
    path: str
    source: str
    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...]
