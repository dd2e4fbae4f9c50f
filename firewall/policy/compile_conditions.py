"""Compiling `when` conditions: fields that exist, values of the type the operator reads."""

from __future__ import annotations

from firewall.policy import syntax as s
from firewall.policy.compile_base import Reporter, did_you_mean, is_number, show
from firewall.policy.compiled import AllCond, AnyCond, CompareCond, Cond, FieldRef, InCond, MatchCond, NotCond, Scalar
from firewall.policy.hosts import InvalidHost, normalize_host

FIELD_KINDS = ("agent", "method", "path", "host", "query", "header", "json", "body.size")
NUMERIC_FIELDS = ("body.size",)


class ConditionsCompiler(Reporter):
    def _condition(self, node: s.Condition) -> Cond | None:
        """Compile a condition; None (with errors reported) if any part is invalid."""
        if isinstance(node, s.And) or isinstance(node, s.Or):
            left, right = self._condition(node.left), self._condition(node.right)
            if left is None or right is None:
                return None
            kind = AllCond if isinstance(node, s.And) else AnyCond
            items: list[Cond] = []
            for part in (left, right):
                items.extend(part.items if isinstance(part, kind) else (part,))
            return kind(tuple(items))
        if isinstance(node, s.Not):
            inner = self._condition(node.operand)
            return None if inner is None else NotCond(inner)
        field = self._field(node.field)
        if field is None:
            return None
        if isinstance(node, s.Compare):
            if node.op in ("<", "<=", ">", ">=") and not is_number(node.value.value):
                self.error(f'"{node.op}" compares numbers; {show(node.value.value)} is not a number', node.value.span)
                return None
            if field.kind in NUMERIC_FIELDS and not is_number(node.value.value):
                self.error(f"{field.text} is a number; compare it with a number", node.value.span)
                return None
            return CompareCond(field, node.op, self._literal(field, node.value.value))
        if isinstance(node, s.InList):
            return InCond(field, tuple(self._literal(field, v.value) for v in node.values), node.negated)
        if not isinstance(node.pattern.value, str):
            self.error("matches takes a quoted glob", node.pattern.span)
            return None
        return MatchCond(field, node.pattern.value)

    def _literal(self, field: FieldRef, value: Scalar) -> Scalar:
        """Literals compared with method and host are normalised like the request side."""
        if field.kind == "method" and isinstance(value, str):
            return value.upper()
        if field.kind == "host" and isinstance(value, str):
            try:
                return normalize_host(value)
            except InvalidHost:
                return value.lower()
        return value

    def _field(self, word: s.Word) -> FieldRef | None:
        text = word.text
        head, _, rest = text.partition(".")
        if text in ("agent", "method", "path", "host", "body.size"):
            return FieldRef(text) if text != "body.size" else FieldRef("body.size")
        if head in ("query", "header", "json") and rest:
            key = tuple(rest.split("."))
            if head == "header":
                return FieldRef("header", (rest.lower(),))
            if head == "query":
                return FieldRef("query", (rest,))
            return FieldRef("json", key)
        suggestions = ["agent", "method", "path", "host", "body.size"]
        if rest:
            suggestions += [f"query.{rest}", f"header.{rest}", f"json.{rest}"]
        if head in ("query", "header", "json"):
            self.error(f'field "{text}" needs a name after "{head}."', word.span, f"for example: {head}.model")
        else:
            self.error(
                f'unknown field "{text}"{did_you_mean(text, suggestions)}',
                word.span,
                None
                if did_you_mean(text, suggestions)
                else "fields: agent, method, path, host, query.NAME, header.NAME, json.a.b, body.size",
            )
        return None
