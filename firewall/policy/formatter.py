"""`firewall policy fmt`: one canonical layout for policy files, comments kept.

Four-space indents, one statement per line, single spaces between words,
a blank line between blocks, at most one blank line where the source had
some, comments where they were (a comment after code stays on its line).
Formatting a formatted file changes nothing.
"""

from __future__ import annotations

import json

from firewall.policy import syntax as s
from firewall.policy.errors import Span

INDENT = "    "


def format_policy(file: s.PolicyFile) -> str:
    return _Formatter(file).run()


class _Formatter:
    def __init__(self, file: s.PolicyFile):
        self.file = file
        self.comments = sorted(file.comments, key=lambda c: (c.line, c.column))
        self.next_comment = 0
        self.out: list[str] = []
        self.last_line = 0  # last source line already written out

    # ---- comments and blank lines ----

    def _blank_if_gap(self, line: int, force: bool = False) -> None:
        if self.out and self.out[-1] != "" and (force or line - self.last_line > 1):
            self.out.append("")

    def _comments_before(self, line: int, indent: str) -> None:
        while self.next_comment < len(self.comments) and self.comments[self.next_comment].line < line:
            comment = self.comments[self.next_comment]
            self._blank_if_gap(comment.line)
            self.out.append(indent + comment.text)
            self.last_line = comment.line
            self.next_comment += 1

    def _emit(self, text: str, first_line: int, last_line: int, indent: str, *, blank_before: bool = False) -> None:
        """Write one line of code covering source lines first..last, with its comments."""
        self._comments_before(first_line, indent)
        self._blank_if_gap(first_line, force=blank_before)
        trailing = []
        while self.next_comment < len(self.comments) and self.comments[self.next_comment].line <= last_line:
            trailing.append(self.comments[self.next_comment].text)
            self.next_comment += 1
        line = indent + text
        if trailing:
            line += "  " + trailing[0]
        self.out.append(line)
        self.out.extend(indent + extra for extra in trailing[1:])
        self.last_line = last_line

    def _close(self, span: Span, indent: str) -> None:
        self._comments_before(span.end_line, indent + INDENT)
        self._emit("}", span.end_line, span.end_line, indent)

    # ---- statements ----

    def run(self) -> str:
        previous = None
        for statement in self.file.statements:
            is_block = isinstance(statement, (s.Credential, s.HostBlock, s.TestBlock))
            separate = previous is not None and (is_block or previous)
            self._statement(statement, separate)
            previous = is_block
        self._comments_before(10**9, "")
        return "\n".join(self.out).rstrip("\n") + "\n"

    def _statement(self, node: s.Statement, separate: bool) -> None:
        span = node.span
        if isinstance(node, s.DefaultStmt):
            self._emit(f"default {node.verdict}", span.line, span.end_line, "", blank_before=separate)
        elif isinstance(node, s.ModeStmt):
            self._emit(f"mode {node.mode}", span.line, span.end_line, "", blank_before=separate)
        elif isinstance(node, s.ApprovalTimeoutStmt):
            self._emit(f"approval timeout {node.duration.text}", span.line, span.end_line, "", blank_before=separate)
        elif isinstance(node, s.PriceStmt):
            parts = " ".join(f"{p.kind} {p.amount.text}" for p in node.parts)
            self._emit(
                f"price {_string(node.model.value)} {parts}", span.line, span.end_line, "", blank_before=separate
            )
        elif isinstance(node, s.Credential):
            self._emit(f"credential {node.name.text} {{", span.line, node.name.span.end_line, "", blank_before=separate)
            for line in node.lines:
                self._emit(self._credential_line(line), line.span.line, line.span.end_line, INDENT)
            self._close(span, "")
        elif isinstance(node, s.HostBlock):
            header = "host " + ", ".join(w.text for w in node.patterns) + " {"
            self._emit(header, span.line, node.patterns[-1].span.end_line, "", blank_before=separate)
            for item in node.items:
                self._emit(self._host_item(item), item.span.line, item.span.end_line, INDENT)
            self._close(span, "")
        elif isinstance(node, s.TestBlock):
            self._emit(
                f"test {_string(node.name.value)} {{", span.line, node.name.span.end_line, "", blank_before=separate
            )
            method_width = max((len(e.method.text) for e in node.expects), default=0)
            for expect in node.expects:
                self._emit(self._expect(expect, method_width), expect.span.line, expect.span.end_line, INDENT)
            self._close(span, "")

    def _credential_line(self, node: s.CredentialLine) -> str:
        if isinstance(node, s.SecretLine):
            return f"secret {_string(node.entry.value)}"
        if isinstance(node, s.HeaderLine):
            return f"header {node.header.text} = {_string(node.template.value)}"
        if isinstance(node, s.QueryLine):
            return f"query {node.parameter.text} = {_string(node.template.value)}"
        if isinstance(node, s.OAuthLine):
            return "oauth"
        return f"{node.key} {_string(node.value.value)}"

    def _host_item(self, node: s.HostItem) -> str:
        if isinstance(node, s.Inject):
            return " ".join(filter(None, ["inject", node.credential.text, self._when(node.when)]))
        if isinstance(node, s.Limit):
            parts = ["limit", node.amount.text, "per", node.unit]
            if node.per_agent:
                parts += ["per", "agent"]
            parts += [_words(node.methods), _words(node.paths), self._when(node.when)]
            return " ".join(filter(None, parts))
        if isinstance(node, s.Budget):
            amount = [node.amount.text] if node.measure == "usd" else [node.amount.text, *_token_kind(node.measure)]
            parts = ["limit", *amount, "per", node.unit.text]
            if node.per_agent:
                parts += ["per", "agent"]
            if node.reserve:
                parts += ["reserve", "max_tokens"]
            parts += [_words(node.methods), _words(node.paths), self._when(node.when)]
            return " ".join(filter(None, parts))
        if isinstance(node, s.UsageSetting):
            return f"usage unreadable {node.action}"
        if isinstance(node, s.ModeStmt):
            return f"mode {node.mode}"
        reason = f"reason {_string(node.reason.value)}" if node.reason else ""
        name = f"as {_string(node.name.value)}" if node.name else ""
        if isinstance(node, s.TcpRule):
            return " ".join(filter(None, [node.verdict, "tcp", reason, name]))
        parts = [node.verdict, _words(node.methods), _words(node.paths), self._when(node.when), reason, name]
        return " ".join(filter(None, parts))

    def _expect(self, node: s.Expect, method_width: int) -> str:
        parts = [f"expect {node.expected:<7} {node.method.text:<{method_width}} {node.url.text}"]
        if node.agent is not None:
            parts.append(f"as agent {_string(node.agent.value)}")
        parts.extend(f"header {_string(h.value)}" for h in node.headers)
        if node.has_json:
            parts.append("json " + json.dumps(node.json_body, ensure_ascii=False))
        if node.after is not None:
            parts.append(f"after {node.after.text} requests")
        return " ".join(parts)

    # ---- conditions ----

    def _when(self, cond: s.Condition | None) -> str:
        return f"when {self._cond(cond, 0)}" if cond is not None else ""

    def _cond(self, node: s.Condition, parent_level: int) -> str:
        # Binding strength: or 1, and 2, not 3, comparisons 4; parenthesise weaker children.
        if isinstance(node, s.Or):
            text, level = f"{self._cond(node.left, 1)} or {self._cond(node.right, 1)}", 1
        elif isinstance(node, s.And):
            text, level = f"{self._cond(node.left, 2)} and {self._cond(node.right, 2)}", 2
        elif isinstance(node, s.Not):
            text, level = f"not {self._cond(node.operand, 3)}", 3
        else:
            text, level = self._comparison(node), 4
        return f"({text})" if level < parent_level else text

    def _comparison(self, node: s.Compare | s.InList | s.Matches) -> str:
        if isinstance(node, s.Compare):
            return f"{node.field.text} {node.op} {self._value(node.value)}"
        if isinstance(node, s.InList):
            op = "not in" if node.negated else "in"
            return f"{node.field.text} {op} [{', '.join(self._value(v) for v in node.values)}]"
        return f"{node.field.text} matches {_string(node.pattern.value)}"

    def _value(self, value: s.Value[s.Scalar]) -> str:
        if isinstance(value.value, str):
            return _string(value.value)
        return self.file.source[value.span.start : value.span.end]


def _token_kind(measure: str) -> list[str]:
    """ "output_tokens" → ["output", "tokens"]; "tokens" → ["tokens"]."""
    return measure.split("_") if "_" in measure else [measure]


def _words(words: tuple[s.Word, ...]) -> str:
    return ", ".join(w.text for w in words)


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)
