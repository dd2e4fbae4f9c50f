"""Policy text → syntax tree (`firewall.policy.syntax`).

This module, parse_errors.py (syntax errors people can act on) and to_syntax.py (Lark's tree →
the syntax tree) are the only ones that import Lark. The parser is built once, lazily; syntax
errors are collected (all of them, not only the first) and re-raised as
`PolicySyntaxError`, so no Lark type leaks out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextvars import ContextVar
from functools import cache
from importlib import resources

from lark import Lark, Token
from lark.exceptions import UnexpectedInput

from firewall.policy import syntax as s
from firewall.policy.errors import (
    Diagnostic,
    PolicySyntaxError,
    Severity,
    diagnostic,
)
from firewall.policy.parse_errors import (
    GLUED_KEYWORD,
    STRING_OR_COMMENT,
    blank_statement,
    first_per_line,
    syntax_diagnostic,
)
from firewall.policy.to_syntax import MAX_NESTING, TooDeep, ToSyntax, span_of

# Lark matches a keyword as a prefix of a longer word ("hostb.com" would read as
# "host b.com"). A lexer callback retypes a keyword that runs into the next word,
# so the parser rejects it instead.
_NAMED_KEYWORDS = ("VERDICT", "MODE", "UNIT", "OAUTH_KEY", "BOOLEAN", "NULL", "TOKEN_KIND", "MAX_TOKENS", "REFUSE")
_source_being_parsed: ContextVar[str] = ContextVar("source_being_parsed", default="")


def _keyword_must_end(token: Token) -> Token:
    source = _source_being_parsed.get()
    end = token.end_pos
    if end is not None and end < len(source) and (source[end].isalnum() or source[end] == "_"):
        return Token.new_borrow_pos(GLUED_KEYWORD, str(token), token)
    return token


@cache
def _parser() -> Lark:
    grammar = resources.files("firewall.grammar").joinpath("policy.lark").read_text(encoding="utf-8")
    rules = grammar.split("// ---- terminals")[0]
    keywords = {word.upper() for word in re.findall(r'"([a-z_]+)"', rules)}
    callbacks = {name: _keyword_must_end for name in keywords | set(_NAMED_KEYWORDS)}
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False, lexer_callbacks=callbacks)


MAX_SYNTAX_ERRORS = 20


def parse_policy(source: str, path: str) -> s.PolicyFile:
    """Parse one policy file; raise `PolicySyntaxError` listing every syntax error."""
    errors: list[Diagnostic] = []
    text = source
    while True:
        try:
            _source_being_parsed.set(text)
            tree = _parser().parse(text)
            break
        except UnexpectedInput as error:
            errors.append(syntax_diagnostic(error, source, path))
            blanked = blank_statement(text, error.line)
            if blanked is None or len(errors) >= MAX_SYNTAX_ERRORS:
                break
            text = blanked
    if errors:
        raise PolicySyntaxError(first_per_line(errors))
    try:
        statements: list[s.Statement] = ToSyntax(path).transform(tree)  # the start rule returns them
    except TooDeep as error:
        span = span_of(path, error.meta)
        raise PolicySyntaxError(
            [
                diagnostic(
                    Severity.ERROR,
                    f"nested more than {MAX_NESTING} levels deep",
                    span,
                    source,
                    "split the condition into several rules, or compare with `in [...]`",
                )
            ]
        ) from None
    return s.PolicyFile(path, source, tuple(statements), tuple(_comments(source)))


def _comments(source: str) -> Iterator[s.Comment]:
    """Every comment, with its position; the grammar ignores them, `policy fmt` keeps them."""
    for lineno, line in enumerate(source.split("\n"), start=1):
        for match in STRING_OR_COMMENT.finditer(line):
            if match.group().startswith("#"):
                yield s.Comment(match.group().rstrip(), lineno, match.start() + 1)
