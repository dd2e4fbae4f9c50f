"""Evaluating `when` conditions against one request, in three-valued logic.

A condition is True, False, or UNKNOWN: UNKNOWN when it needs the JSON body
and the body is not JSON or is larger than the inspection limit. The caller
decides what UNKNOWN means (an allow rule does not match; a block or approve
rule does: the firewall fails closed).

A field the request does not have is MISSING: only `!=`, `not in` and `not …`
are true of it.

Query parameters and headers are text: compared with a number literal, a
value written as a number (`?n=2`) is that number; JSON values keep their
JSON types ("1" is not 1).
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from urllib.parse import parse_qsl

from firewall.policy.compiled import AllCond, AnyCond, CompareCond, Cond, FieldRef, InCond, MatchCond, NotCond
from firewall.policy.decision import Request

UNKNOWN = None  # the third truth value


class _FieldState:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISSING = _FieldState("MISSING")  # the request has no such field
UNREADABLE = _FieldState("UNREADABLE")  # the field is in a body that cannot be read (not JSON null)
_NOT_JSON = object()


class RequestView:
    """The fields conditions read, computed once per request and only when asked."""

    def __init__(self, request: Request, host: str, path: str, query: str):
        self.request = request
        self.host = host
        self.path = path
        self.query_string = query

    @cached_property
    def query(self) -> dict[str, str]:
        params: dict[str, str] = {}
        for key, value in parse_qsl(self.query_string, keep_blank_values=True):
            params.setdefault(key, value)
        return params

    @cached_property
    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in self.request.headers:
            out.setdefault(key.lower(), value)
        return out

    @cached_property
    def json(self):
        if not self.request.body_complete:
            return _NOT_JSON
        try:
            return json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return _NOT_JSON

    def value(self, field: FieldRef):
        """The field's value, MISSING, or UNREADABLE."""
        kind = field.kind
        if kind == "agent":
            return self.request.agent if self.request.agent is not None else MISSING
        if kind == "method":
            return self.request.method
        if kind == "path":
            return self.path
        if kind == "host":
            return self.host
        if kind == "body.size":
            return self.request.body_size
        if kind == "query":
            return self.query.get(field.key[0], MISSING)
        if kind == "header":
            return self.headers.get(field.key[0], MISSING)
        document = self.json
        if document is _NOT_JSON:
            return UNREADABLE
        for key in field.key:
            if isinstance(document, dict) and key in document:
                document = document[key]
            elif isinstance(document, list) and key.isdigit() and int(key) < len(document):
                document = document[int(key)]
            else:
                return MISSING
        return document


def evaluate(cond: Cond, view: RequestView) -> bool | None:
    """True, False or UNKNOWN (None)."""
    if isinstance(cond, AllCond):
        result = True
        for item in cond.items:
            value = evaluate(item, view)
            if value is False:
                return False
            if value is UNKNOWN:
                result = UNKNOWN
        return result
    if isinstance(cond, AnyCond):
        result = False
        for item in cond.items:
            value = evaluate(item, view)
            if value is True:
                return True
            if value is UNKNOWN:
                result = UNKNOWN
        return result
    if isinstance(cond, NotCond):
        value = evaluate(cond.item, view)
        return UNKNOWN if value is UNKNOWN else not value
    actual = view.value(cond.field)
    if actual is UNREADABLE:
        return UNKNOWN
    if isinstance(cond, CompareCond):
        return _compare(_as_literal_type(cond.field, actual, cond.value), cond.op, cond.value)
    if isinstance(cond, InCond):
        if actual is MISSING:
            return cond.negated
        found = any(_equal(_as_literal_type(cond.field, actual, v), v) for v in cond.values)
        return not found if cond.negated else found
    if isinstance(cond, MatchCond):
        return isinstance(actual, str) and cond.regex.fullmatch(actual) is not None
    raise TypeError(f"not a condition: {cond!r}")


# Query parameters and headers are text: compared with a number, text written
# as a number (in the policy's own number syntax) is that number.
_TEXT_FIELDS = ("query", "header")
_INTEGER = re.compile(r"-?\d+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")


def _as_literal_type(field: FieldRef, actual, literal):
    if field.kind not in _TEXT_FIELDS or not isinstance(actual, str) or not _is_number(literal):
        return actual
    if _INTEGER.fullmatch(actual):
        return int(actual)
    return float(actual) if _NUMBER.fullmatch(actual) else actual


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(a, b) -> bool:
    # JSON true is not 1, and "1" is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _compare(actual, op: str, expected) -> bool:
    if actual is MISSING:
        return op == "!="
    if op == "==":
        return _equal(actual, expected)
    if op == "!=":
        return not _equal(actual, expected)
    if not (_is_number(actual) and _is_number(expected)):
        return False
    if op == "<":
        return actual < expected
    if op == "<=":
        return actual <= expected
    if op == ">":
        return actual > expected
    return actual >= expected
