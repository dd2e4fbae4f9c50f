"""Source spans and the diagnostics every stage reports.

Every message reads `file:line:col: message`, then the line, then a caret
under the spot, then an optional hint. Messages are lowercase with no
trailing period.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class Span:
    """Where a piece of policy source is: 1-based line and column, 0-based offsets."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int
    start: int
    end: int

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    severity: Severity
    message: str
    span: Span
    source_line: str
    hint: str | None = None

    def render(self) -> str:
        prefix = "" if self.severity is Severity.ERROR else "warning: "
        caret_pad = "".join(ch if ch == "\t" else " " for ch in self.source_line[: self.span.column - 1])
        lines = [f"{self.span.location}: {prefix}{self.message}", self.source_line, f"{caret_pad}^"]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


def line_of(text: str, line: int) -> str:
    """The 1-based `line` of `text`, without its newline ("" past the end)."""
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def diagnostic(severity: Severity, message: str, span: Span, source: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic(severity, message, span, line_of(source, span.line), hint)


class PolicyError(Exception):
    """A policy that cannot be used, with every error found in it."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...] | list[Diagnostic]):
        self.diagnostics = tuple(diagnostics)
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)


class PolicySyntaxError(PolicyError):
    """The text is not in the policy language."""


class CompileError(PolicyError):
    """The text parses but does not mean anything the firewall can enforce."""


class PolicyFileError(PolicyError):
    """A policy file that cannot be read at all (missing, not UTF-8, ...)."""

    def __init__(self, path: str, message: str):
        span = Span(path, 1, 1, 1, 1, 0, 0)
        super().__init__([Diagnostic(Severity.ERROR, message, span, "")])

    def render(self) -> str:
        d = self.diagnostics[0]
        return f"{d.span.file}: {d.message}"
