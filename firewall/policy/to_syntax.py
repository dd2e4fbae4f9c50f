"""Lark's parse tree → the syntax tree (`firewall.policy.syntax`): one method per grammar rule.

Only shapes change here; parser.py parses and reports syntax errors (parse_errors.py). No Lark
type leaves the parser: `parse_policy` returns only syntax dataclasses.
"""

from __future__ import annotations

from typing import Any

from lark import Token, Tree
from lark.tree import Meta

from firewall.policy import syntax as s
from firewall.policy.errors import Span
from firewall.policy.parse_errors import string_value

# A rule's children, each already transformed: what each is follows from the grammar rule,
# which mypy cannot see, so each method reads them as the grammar says.
Children = list[Any]
_JsonArray = list[object]  # `list` in ToSyntax is a grammar rule's method


# How deep the syntax tree may nest (conditions, JSON in tests); deeper would
# exhaust Python's stack in the stages after the parser.
MAX_NESTING = 100


class TooDeep(Exception):
    """The syntax tree nests deeper than MAX_NESTING; `meta` is where."""

    def __init__(self, meta: Meta) -> None:
        self.meta = meta


def span_of(path: str, meta_or_token: Meta | Token) -> Span:
    m = meta_or_token
    start = getattr(m, "start_pos", 0)
    end = getattr(m, "end_pos", start)
    # The parser propagates positions: every tree and token it hands over has them.
    assert m.line is not None and m.column is not None and m.end_line is not None and m.end_column is not None
    return Span(path, m.line, m.column, m.end_line, m.end_column, start, end)


def _number(token: Token) -> int | float:
    text = str(token)
    try:
        return int(text)
    except ValueError:
        return float(text)


class ToSyntax:
    """Lark tree → `syntax` dataclasses. Only shapes change here.

    Each method is named after a grammar rule and gets the rule's position
    (`meta`) and its children, already transformed, bottom-up. (Lark's own
    Transformer does the same with a wrapper per call; this walk is several
    times faster on policies of thousands of rules.)
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def transform(self, tree: Tree[Token], depth: int = 0) -> Any:
        if depth > MAX_NESTING:
            raise TooDeep(tree.meta)
        children = [self.transform(child, depth + 1) if type(child) is Tree else child for child in tree.children]
        return getattr(self, tree.data)(tree.meta, children)

    def _span(self, meta: Meta) -> Span:
        return span_of(self.path, meta)

    def _word(self, token: Token) -> s.Word:
        return s.Word(str(token), span_of(self.path, token))

    def _value[T: s.Scalar](self, token: Token, value: T) -> s.Value[T]:
        return s.Value(value, span_of(self.path, token))

    def start(self, meta: Meta, children: Children) -> list[s.Statement]:
        return children

    def default_stmt(self, meta: Meta, children: Children) -> s.DefaultStmt:
        return s.DefaultStmt(str(children[0]), self._span(meta))

    def mode_stmt(self, meta: Meta, children: Children) -> s.ModeStmt:
        return s.ModeStmt(str(children[0]), self._span(meta))

    def approval_timeout_stmt(self, meta: Meta, children: Children) -> s.ApprovalTimeoutStmt:
        return s.ApprovalTimeoutStmt(self._word(children[0]), self._span(meta))

    def price_stmt(self, meta: Meta, children: Children) -> s.PriceStmt:
        model, *parts = children
        return s.PriceStmt(self._value(model, string_value(model)), tuple(parts), self._span(meta))

    def price_part(self, meta: Meta, children: Children) -> s.PricePart:
        kind, amount = children
        return s.PricePart(str(kind), self._word(amount), self._span(meta))

    # credentials

    def credential(self, meta: Meta, children: Children) -> s.Credential:
        name, *lines = children
        return s.Credential(self._word(name), tuple(lines), self._span(meta))

    def secret_line(self, meta: Meta, children: Children) -> s.SecretLine:
        return s.SecretLine(self._value(children[0], string_value(children[0])), self._span(meta))

    def header_line(self, meta: Meta, children: Children) -> s.HeaderLine:
        header, template = children
        return s.HeaderLine(self._word(header), self._value(template, string_value(template)), self._span(meta))

    def query_line(self, meta: Meta, children: Children) -> s.QueryLine:
        parameter, template = children
        return s.QueryLine(self._word(parameter), self._value(template, string_value(template)), self._span(meta))

    def oauth_line(self, meta: Meta, children: Children) -> s.OAuthLine:
        return s.OAuthLine(self._span(meta))

    def oauth_setting(self, meta: Meta, children: Children) -> s.OAuthSetting:
        key, value = children
        return s.OAuthSetting(str(key), self._value(value, string_value(value)), self._span(meta))

    # host blocks

    def host_block(self, meta: Meta, children: Children) -> s.HostBlock:
        patterns, *items = children
        return s.HostBlock(patterns, tuple(items), self._span(meta))

    def host_patterns(self, meta: Meta, children: Children) -> tuple[s.Word, ...]:
        return tuple(self._word(token) for token in children)

    def inject(self, meta: Meta, children: Children) -> s.Inject:
        when = children[1].value if len(children) > 1 else None
        return s.Inject(self._word(children[0]), when, self._span(meta))

    def limit(self, meta: Meta, children: Children) -> s.Limit:
        amount, unit, *rest = children
        parts = _Parts(rest)
        return s.Limit(
            amount=self._word(amount),
            unit=str(unit),
            per_agent=parts.per_agent,
            methods=parts.methods,
            paths=parts.paths,
            when=parts.when,
            span=self._span(meta),
        )

    def budget(self, meta: Meta, children: Children) -> s.Budget:
        (amount, measure), unit, *rest = children
        parts = _Parts(rest)
        return s.Budget(
            amount=amount,
            measure=measure,
            unit=self._word(unit),
            per_agent=parts.per_agent,
            reserve=any(isinstance(p, _Reserve) for p in rest),
            methods=parts.methods,
            paths=parts.paths,
            when=parts.when,
            span=self._span(meta),
        )

    def money(self, meta: Meta, children: Children) -> tuple[s.Word, str]:
        return self._word(children[0]), "usd"

    def tokens(self, meta: Meta, children: Children) -> tuple[s.Word, str]:
        amount, *kind = children
        return self._word(amount), f"{kind[0]}_tokens" if kind else "tokens"

    def reserve(self, meta: Meta, children: Children) -> _Reserve:
        return _Reserve()

    def usage_setting(self, meta: Meta, children: Children) -> s.UsageSetting:
        return s.UsageSetting(str(children[0]), self._span(meta))

    def per_agent(self, meta: Meta, children: Children) -> _PerAgent:
        return _PerAgent()

    def rule(self, meta: Meta, children: Children) -> s.Rule:
        verdict, *rest = children
        parts = _Parts(rest)
        return s.Rule(str(verdict), parts.methods, parts.paths, parts.when, parts.reason, self._span(meta), parts.name)

    def tcp_rule(self, meta: Meta, children: Children) -> s.TcpRule:
        verdict, *rest = children
        parts = _Parts(rest)
        return s.TcpRule(str(verdict), parts.reason, self._span(meta), parts.name)

    def rule_name(self, meta: Meta, children: Children) -> _Name:
        return _Name(self._value(children[0], string_value(children[0])))

    block_mode = mode_stmt  # a host block's own `mode` line: the same line as the policy's

    def methods(self, meta: Meta, children: Children) -> _Methods:
        return _Methods(tuple(self._word(token) for token in children))

    def paths(self, meta: Meta, children: Children) -> _Paths:
        return _Paths(tuple(self._word(token) for token in children))

    def when(self, meta: Meta, children: Children) -> _When:
        return _When(children[0])

    def reason(self, meta: Meta, children: Children) -> _Reason:
        return _Reason(self._value(children[0], string_value(children[0])))

    # conditions

    def compare(self, meta: Meta, children: Children) -> s.Compare:
        field, op, value = children
        return s.Compare(self._word(field), str(op), value, self._span(meta))

    def in_list(self, meta: Meta, children: Children) -> s.InList:
        field, values = children
        return s.InList(self._word(field), values, False, self._span(meta))

    def not_in_list(self, meta: Meta, children: Children) -> s.InList:
        field, values = children
        return s.InList(self._word(field), values, True, self._span(meta))

    def matches(self, meta: Meta, children: Children) -> s.Matches:
        field, pattern = children
        return s.Matches(self._word(field), self._value(pattern, string_value(pattern)), self._span(meta))

    def and_(self, meta: Meta, children: Children) -> s.And:
        return s.And(children[0], children[1], self._span(meta))

    def or_(self, meta: Meta, children: Children) -> s.Or:
        return s.Or(children[0], children[1], self._span(meta))

    def not_(self, meta: Meta, children: Children) -> s.Not:
        return s.Not(children[0], self._span(meta))

    def list(self, meta: Meta, children: Children) -> tuple[s.Value[s.Scalar], ...]:
        return tuple(children)

    def scalar(self, meta: Meta, children: Children) -> s.Value[s.Scalar]:
        token = children[0]
        if token.type == "STRING":
            return self._value(token, string_value(token))
        if token.type == "NUMBER":
            return self._value(token, _number(token))
        if token.type == "BOOLEAN":
            return self._value(token, str(token) == "true")
        return self._value(token, None)

    # tests

    def test_block(self, meta: Meta, children: Children) -> s.TestBlock:
        name, *expects = children
        return s.TestBlock(self._value(name, string_value(name)), tuple(expects), self._span(meta))

    def expect(self, meta: Meta, children: Children) -> s.Expect:
        expected, method, url, *options = children
        agent = json_body = after = None
        has_json = False
        headers: list[s.Value[str]] = []
        for option in options:
            if isinstance(option, _Agent):
                agent = option.value
            elif isinstance(option, _Json):
                json_body, has_json = option.value, True
            elif isinstance(option, _Header):
                headers.append(option.value)
            elif isinstance(option, _After):
                after = option.value
        return s.Expect(
            expected=expected,
            method=self._word(method),
            url=self._word(url),
            agent=agent,
            json_body=json_body,
            has_json=has_json,
            headers=tuple(headers),
            after=after,
            span=self._span(meta),
        )

    def expected_decision(self, meta: Meta, children: Children) -> str:
        return str(children[0])

    def as_agent(self, meta: Meta, children: Children) -> _Agent:
        return _Agent(self._value(children[0], string_value(children[0])))

    def json_body(self, meta: Meta, children: Children) -> _Json:
        return _Json(children[0])

    def header_option(self, meta: Meta, children: Children) -> _Header:
        return _Header(self._value(children[0], string_value(children[0])))

    def after_requests(self, meta: Meta, children: Children) -> _After:
        return _After(self._word(children[0]))

    def json_object(self, meta: Meta, children: Children) -> dict[str, object]:
        return dict(children)

    def json_pair(self, meta: Meta, children: Children) -> tuple[str, object]:
        key, value = children
        return string_value(key), value

    def json_array(self, meta: Meta, children: Children) -> _JsonArray:
        return list(children)

    def json_string(self, meta: Meta, children: Children) -> str:
        return string_value(children[0])

    def json_number(self, meta: Meta, children: Children) -> int | float:
        return _number(children[0])

    def json_bool(self, meta: Meta, children: Children) -> bool:
        return str(children[0]) == "true"

    def json_null(self, meta: Meta, children: Children) -> None:
        return None


# Small carriers for optional parts, so the transformer can tell them apart.


class _PerAgent:
    pass


class _Reserve:
    pass


class _Carrier[T]:
    def __init__(self, value: T) -> None:
        self.value = value


class _Methods(_Carrier[tuple[s.Word, ...]]):
    pass


class _Paths(_Carrier[tuple[s.Word, ...]]):
    pass


class _When(_Carrier[s.Condition]):
    pass


class _Reason(_Carrier[s.Value[str]]):
    pass


class _Name(_Carrier[s.Value[str]]):
    pass


class _Agent(_Carrier[s.Value[str]]):
    pass


class _Json(_Carrier[s.JsonValue]):
    pass


class _Header(_Carrier[s.Value[str]]):
    pass


class _After(_Carrier[s.Word]):
    pass


class _Parts:
    """The optional parts of a rule or limit line, sorted by kind."""

    def __init__(self, parts: list[object]) -> None:
        self.per_agent = any(isinstance(p, _PerAgent) for p in parts)
        self.methods: tuple[s.Word, ...] = next((p.value for p in parts if isinstance(p, _Methods)), ())
        self.paths: tuple[s.Word, ...] = next((p.value for p in parts if isinstance(p, _Paths)), ())
        self.when = next((p.value for p in parts if isinstance(p, _When)), None)
        self.reason = next((p.value for p in parts if isinstance(p, _Reason)), None)
        self.name = next((p.value for p in parts if isinstance(p, _Name)), None)
