"""Syntax errors people can act on: what was expected in their words, a hint, one per line.

After an error the parser blanks the bad statement and parses again (`blank_statement`),
so one run reports every error of a file, each pointing with a caret.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection

from lark import Token
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from firewall.policy.errors import Diagnostic, Severity, Span, diagnostic

GLUED_KEYWORD = "GLUED_KEYWORD"  # a keyword run into the next word (parser.py retypes it so)

# What a person calls each terminal, for "expected ..." messages.
TERMINAL_NAMES = {
    "VERDICT": "allow, block or approve",
    "MODE": "enforce or report",
    "UNIT": "second, minute, hour, day, week or month",
    "TOKEN_KIND": "input, output or cached",
    "MONEY": "an amount of dollars such as $20",
    "MAX_TOKENS": "max_tokens",
    "REFUSE": "refuse",
    "OAUTH_KEY": "token_url, client_id or account_header",
    "COMPARE_OP": "a comparison (==, !=, <, <=, >, >=)",
    "BOOLEAN": "true or false",
    "NULL": "null",
    "DURATION": "a duration such as 120s, 5m or 1.5h",
    "NUMBER": "a number",
    "STRING": 'a "quoted string"',
    "NAME": "a name",
    "METHOD": "an HTTP method such as GET",
    "FIELD": "a field such as json.model",
    "HEADER_NAME": "a header name",
    "PARAM_NAME": "a query parameter name",
    "HOST_PATTERN": "a host such as api.example.com",
    "PATH_GLOB": "a path starting with /",
    "URL": "a URL such as https://api.example.com/v1",
    "LBRACE": '"{"',
    "RBRACE": '"}"',
    "LPAR": '"("',
    "RPAR": '")"',
    "LSQB": '"["',
    "RSQB": '"]"',
    "COMMA": '","',
    "COLON": '":"',
    "EQUAL": '"="',
    "$END": "the end of the file",
}

# Statements a file may start a line with, for the top-level "expected" message.
TOP_LEVEL = "default, mode, approval timeout, price, credential, host or test"


def blank_statement(text: str, line: int) -> str | None:
    """`text` with the erroneous line blanked out, to look for further errors after it.

    Policies are written one statement per line, so dropping the bad line lets the
    parser resynchronise. A dropped line that opens a block takes the block with it.
    Offsets are kept (characters become spaces), so later positions stay exact.
    None when there is nothing left to blank (the error is at the end of the file).
    """
    lines = text.split("\n")
    if not 0 < line <= len(lines) or not lines[line - 1].strip():
        return None
    depth = 0
    index = line - 1
    while index < len(lines):
        code = STRING_OR_COMMENT.sub(lambda m: "" if m.group().startswith("#") else '""', lines[index])
        depth += code.count("{") - code.count("}")
        lines[index] = " " * len(lines[index])
        index += 1
        if depth <= 0:
            break
    return "\n".join(lines)


# Strings cannot span lines, so a line-by-line scan that skips strings finds comments exactly.
STRING_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')


def first_per_line(errors: list[Diagnostic]) -> list[Diagnostic]:
    """After a syntax error the parser resynchronises; keep one error per line."""
    seen: set[int] = set()
    kept = []
    for error in errors:
        if error.span.line not in seen:
            seen.add(error.span.line)
            kept.append(error)
    return kept


def syntax_diagnostic(error: UnexpectedInput, source: str, path: str) -> Diagnostic:
    line, column = max(error.line, 1), max(error.column, 1)
    offset = getattr(error, "pos_in_stream", None) or 0
    span = Span(path, line, column, line, column + 1, offset, offset + 1)
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream  # set by the lexer: where the character is
        char = source[position] if position is not None and position < len(source) else ""
        message, hint = f"unexpected character {char!r}", _expected(error.allowed)
        if char == "'":
            hint = 'strings use double quotes: "like this"'
    elif isinstance(error, UnexpectedEOF):
        message, hint = "unexpected end of file", _expected(error.expected)
        span = _end_span(source, path)
    elif isinstance(error, UnexpectedToken):
        token = error.token
        if token.type == "$END":
            message = "unexpected end of file"
            span = _end_span(source, path)
            if "RBRACE" in error.expected:
                message += ": a block is not closed"
                if opened := open_block(source, len(source)):
                    message = f'unexpected end of file: the block "{opened[1]}" (line {opened[0]}) is not closed'
        else:
            message = f"unexpected {_describe_token(token)}"
        hint = _hint_for(token, error.expected, source)
        if token.type == "$END" and "RBRACE" in error.expected:
            hint = 'add "}" where the block ends'
        elif token.type != "$END" and "RBRACE" in error.expected and token.type in _BLOCK_OPENERS:
            if opened := open_block(source, token.start_pos or 0):
                hint = f'the block "{opened[1]}" (line {opened[0]}) is not closed: add "}}" before this line'
        if token.type == GLUED_KEYWORD:
            glued = re.match(r"\w+", source[token.start_pos :])
            assert glued is not None  # the token is a keyword running into the next word
            word = glued.group()
            message = f'"{word}" is not a word of the language'
            hint = f'if "{token}" is meant, put a space after it'
    else:
        message, hint = "syntax error", None
    return diagnostic(Severity.ERROR, message, span, source, hint)


_BLOCK_OPENERS = frozenset({"HOST", "CREDENTIAL", "TEST", "DEFAULT", "MODE", "APPROVAL"})


def open_block(source: str, upto: int) -> tuple[int, str] | None:
    """The innermost block still open at offset `upto`: its line number and its header (the line's
    text before "{"), or None when every block opened before `upto` is closed."""
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(source[:upto].split("\n"), start=1):
        code = STRING_OR_COMMENT.sub(lambda m: "" if m.group().startswith("#") else "S", line)
        for char in code:
            if char == "{":
                stack.append((number, line.split("{")[0].strip()))
            elif char == "}" and stack:
                stack.pop()
    return stack[-1] if stack else None


def _end_span(source: str, path: str) -> Span:
    """The end of the last line that has something on it."""
    lines = source.rstrip().split("\n")
    line, column = len(lines), len(lines[-1]) + 1
    return Span(path, line, column, line, column, len(source), len(source))


def _describe_token(token: Token) -> str:
    text = str(token)
    if token.type in ("STRING",):
        return f"string {text}"
    return f'"{text}"'


def _hint_for(token: Token, expected: set[str], source: str) -> str | None:
    text = str(token)
    # The lexer splits "v1/models" before its "/": look at what follows the token too.
    text_and_rest = text + source[token.end_pos : token.end_pos + 1] if token.end_pos is not None else text
    if text.startswith("'"):
        return 'strings use double quotes: "like this"'
    if text == "=" and "COMPARE_OP" in expected:
        return "to compare, write == instead of ="
    if "VERDICT" in expected and "RBRACE" in expected and text.lower() in ("allow", "block", "approve"):
        return "verdicts are lower-case: allow, block or approve"
    if "VERDICT" in expected and (meant := _did_you_mean(text, _RULE_WORDS)):
        return f'did you mean "{meant}"?'
    if expected >= {"HOST", "DEFAULT"} and (meant := _did_you_mean(text, _TOP_WORDS)):
        return f'did you mean "{meant}"? (expected {TOP_LEVEL})'
    if "METHOD" in expected and text.upper() in _HTTP_METHODS and text != text.upper():
        return f"HTTP methods are upper-case: {text.upper()}"
    if "PATH_GLOB" in expected and token.type == "STRING" and text.startswith('"/'):
        return f"write the path without quotes: {string_value(token)}"
    if "PATH_GLOB" in expected and not text.startswith("/") and "/" in text_and_rest:
        return "paths start with /"
    if expected >= {"HOST", "DEFAULT"} or expected >= {"DEFAULT", "CREDENTIAL"}:
        return f"expected {TOP_LEVEL}"
    return _expected(expected)


# Words a rule line may start with, and words people reach for from other tools.
_RULE_WORDS = ("allow", "block", "approve", "inject", "limit")
_TOP_WORDS = ("default", "mode", "approval", "credential", "host", "test")
_SYNONYMS = {
    "deny": "block",
    "reject": "block",
    "drop": "block",
    "refuse": "block",
    "permit": "allow",
    "accept": "allow",
    "pass": "allow",
    "ask": "approve",
    "hold": "approve",
    "confirm": "approve",
}


def _did_you_mean(word: str, choices: tuple[str, ...]) -> str | None:
    """The word of `choices` a misspelled or borrowed `word` most likely means."""
    lowered = word.lower()
    if not lowered.isalpha():
        return None
    if _SYNONYMS.get(lowered) in choices:
        return _SYNONYMS[lowered]
    close = difflib.get_close_matches(lowered, choices, n=1, cutoff=0.6)
    return close[0] if close and close[0] != lowered else None


_HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT"}


def _expected(expected: Collection[str]) -> str | None:
    if not expected:
        return None
    names = sorted({TERMINAL_NAMES.get(name, _keyword(name)) for name in expected})
    if len(names) > 6:
        return None
    return "expected " + " or ".join(names)


def _keyword(terminal: str) -> str:
    # Anonymous keyword terminals are named after their text in upper case ("HOST").
    return f'"{terminal.lower()}"' if terminal.isalpha() else terminal


def string_value(token: Token) -> str:
    text: str = json.loads(str(token))  # a STRING token is a JSON string literal
    return text
