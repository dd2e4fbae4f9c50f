"""Compiling `test` blocks: each `expect` line becomes a request to decide and an expected answer."""

from __future__ import annotations

from dataclasses import dataclass

from firewall.policy import syntax as s
from firewall.policy.compile_base import (
    HTTP_METHODS,
    Reporter,
    as_int,
    did_you_mean,
    show,
)
from firewall.policy.decision import TUNNEL_METHOD, Request, RuleRef


@dataclass(frozen=True)
class ExpectCase:
    """One `expect` line of a `test` block, ready to run."""

    expected: str  # allow | block | approve | limit
    request: Request
    after: int | None
    source: RuleRef
    test_name: str
    test_location: str = ""  # file:line of its `test "name"` block


class ExpectationsCompiler(Reporter):
    def _test(self, node: s.TestBlock) -> list[ExpectCase]:
        cases = []
        for expect in node.expects:
            case = self._expect(expect, node.name.value, f"{self.file_name(node.span.file)}:{node.span.line}")
            if case is not None:
                cases.append(case)
        return cases

    def _expect(self, node: s.Expect, test_name: str, test_location: str) -> ExpectCase | None:
        if node.method.text not in (*HTTP_METHODS, TUNNEL_METHOD):
            self.error(
                f'unknown HTTP method "{node.method.text}"{did_you_mean(node.method.text, HTTP_METHODS)}',
                node.method.span,
            )
            return None
        headers = []
        for header in node.headers:
            name, sep, value = str(header.value).partition(":")
            if not sep or not name.strip():
                self.error(f'header {show(header.value)} is not "Name: value"', header.span)
                return None
            headers.append((name.strip(), value.strip()))
        after = None
        if node.after is not None:
            after = as_int(node.after.text)
            if after is None or after < 0:
                self.error(f'"after" takes a whole number of requests, not "{node.after.text}"', node.after.span)
                return None
        if node.expected == "limit" and after is None:
            self.error(
                "expect limit needs `after N requests`",
                node.span,
                "for example: expect limit GET https://api.example.com/ after 60 requests",
            )
            return None
        agent = node.agent.value if node.agent else None
        try:
            if node.has_json:
                request = Request.with_json(
                    node.method.text, node.url.text, node.json_body, agent=agent, headers=tuple(headers)
                )
            else:
                request = Request.from_url(node.method.text, node.url.text, agent=agent, headers=tuple(headers))
        except ValueError as exc:
            self.error(str(exc), node.url.span)
            return None
        return ExpectCase(node.expected, request, after, self.ref(node.span), test_name, test_location)
