"""What every part of the compiler shares: where diagnostics go, and small readers of words.

The compiler is one object (`compiler._Compiler`) built from a part per concern
(credentials, conditions, expectations); each part reports through `Reporter`.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable
from typing import Protocol

from firewall.policy import syntax as s
from firewall.policy.decision import RuleRef
from firewall.policy.errors import Diagnostic, Severity, Span, diagnostic

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")


class Placed(Protocol):
    """A statement: it knows where it is written."""

    @property
    def span(self) -> Span: ...


class Reporter:
    """Collects every error and warning of every file, each with its place and source line."""

    def __init__(self, files: list[s.PolicyFile], names: dict[str, str] | None = None):
        self.files = files
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.sources = {f.path: f.source for f in files}
        # A file's name in rule references: relative to the policy's folder (loader.rule_file_names).
        self.names = names or {}
        self.rule_names: dict[str, Span] = {}  # `as "name"` → where it was first given

    def error(self, message: str, span: Span, hint: str | None = None) -> None:
        self.errors.append(diagnostic(Severity.ERROR, message, span, self.sources[span.file], hint))

    def warn(self, message: str, span: Span, hint: str | None = None) -> None:
        self.warnings.append(diagnostic(Severity.WARNING, message, span, self.sources[span.file], hint))

    def ref(self, span: Span, name: str = "") -> RuleRef:
        text = self.sources[span.file][span.start : span.end]
        return RuleRef(self.file_name(span.file), span.line, " ".join(text.split()), name)

    def file_name(self, path: str) -> str:
        return self.names.get(path, path)

    def once_each[N: Placed](
        self, nodes: Iterable[N], name: Callable[[N], tuple[str, Span]], twice: str
    ) -> list[tuple[str, N]]:
        """The statements whose name (`name`: it and where it is written) comes first, with it. A
        later one of the same name is an error: `twice` (`{name}` in it), then where the first is."""
        first: dict[str, Span] = {}
        kept: list[tuple[str, N]] = []
        for node in nodes:
            key, span = name(node)
            if key in first:
                self.error(f"{twice.format(name=key)}; the first is at {first[key].location}", span)
                continue
            first[key] = node.span
            kept.append((key, node))
        return kept


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


def as_int(text: str) -> int | None:
    return int(text) if re.fullmatch(r"\d+", text) else None


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def show(value: object) -> str:
    return json.dumps(value)
