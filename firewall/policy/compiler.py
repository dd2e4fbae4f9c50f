"""Syntax trees of one or more policy files → one `CompiledPolicy`.

Every meaning check lives here: unknown fields, bad globs, duplicate hosts,
credentials that do not exist. All errors of all files are collected before
anything is raised; warnings (shadowed rules, unused credentials, empty host
blocks) are returned beside the policy.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from firewall.policy import syntax as s
from firewall.policy.compile_base import (
    HTTP_METHODS,
    as_int,
    did_you_mean,
    show,
)
from firewall.policy.compile_budgets import BudgetsCompiler
from firewall.policy.compile_conditions import ConditionsCompiler
from firewall.policy.compile_credentials import CredentialsCompiler
from firewall.policy.compile_tests import ExpectationsCompiler, ExpectCase
from firewall.policy.compiled import (
    CompiledBlock,
    CompiledBudget,
    CompiledInject,
    CompiledLimit,
    CompiledPolicy,
    CompiledRule,
    CredentialSpec,
    RequestMatcher,
    SourceFile,
    path_glob,
)
from firewall.policy.decision import PERIOD_SECONDS, Mode, RuleRef, Verdict
from firewall.policy.errors import CompileError, Diagnostic, Span
from firewall.policy.hosts import InvalidHost, parse_host_pattern
from firewall.policy.paths import GlobError
from firewall.text import DURATION_EXAMPLES, parse_duration

DEFAULT_APPROVAL_TIMEOUT = 120.0
RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,79}")


@dataclass(frozen=True)
class CompileResult:
    policy: CompiledPolicy
    tests: tuple[ExpectCase, ...]
    warnings: tuple[Diagnostic, ...]


def compile_files(files: list[s.PolicyFile], names: dict[str, str] | None = None) -> CompileResult:
    """Compile parsed files as one policy; raise `CompileError` with every error. `names` maps a
    file's path to its name in rule references (default: the path)."""
    return _Compiler(files, names).run()


class _Compiler(CredentialsCompiler, ConditionsCompiler, ExpectationsCompiler, BudgetsCompiler):
    """The whole policy, its host blocks, rules and limits; the other concerns come from the
    parts it is made of (compile_credentials.py, compile_conditions.py, compile_tests.py)."""

    # ---- the whole policy ----

    def run(self) -> CompileResult:
        statements = [stmt for f in self.files for stmt in f.statements]
        default, default_source = self._single(statements, s.DefaultStmt, "default")
        mode_stmt, _ = self._single(statements, s.ModeStmt, "mode")
        timeout_stmt, _ = self._single(statements, s.ApprovalTimeoutStmt, "approval timeout")

        credentials = self._credentials([x for x in statements if isinstance(x, s.Credential)])
        blocks = [self._block(b, credentials) for b in statements if isinstance(b, s.HostBlock)]
        self._check_duplicate_hosts([b for b in statements if isinstance(b, s.HostBlock)])
        self._warn_unused_credentials(credentials, blocks)
        approval_timeout = self._approval_timeout(timeout_stmt)
        prices = self._prices([x for x in statements if isinstance(x, s.PriceStmt)])
        if self.errors:
            raise CompileError(self._in_source_order(self.errors))

        policy = CompiledPolicy(
            default=Verdict(default.verdict) if default else Verdict.BLOCK,
            default_source=default_source,
            mode=Mode(mode_stmt.mode) if mode_stmt else Mode.ENFORCE,
            approval_timeout=approval_timeout,
            credentials=tuple(credentials.values()),
            blocks=tuple(blocks),
            sources=tuple(
                SourceFile(self.file_name(f.path), hashlib.sha256(f.source.encode()).hexdigest()) for f in self.files
            ),
            prices=prices,
        )
        tests = tuple(case for test in statements if isinstance(test, s.TestBlock) for case in self._test(test))
        if self.errors:
            raise CompileError(self._in_source_order(self.errors))
        return CompileResult(policy, tests, tuple(self._in_source_order(self.warnings)))

    def _in_source_order(self, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
        """Diagnostics by file (in the order given), then by position, as a reader meets them."""
        file_order = {f.path: index for index, f in enumerate(self.files)}
        return sorted(diagnostics, key=lambda d: (file_order[d.span.file], d.span.start))

    def _single[T: s.Statement](
        self, statements: list[s.Statement], kind: type[T], name: str
    ) -> tuple[T, RuleRef] | tuple[None, None]:
        found = [x for x in statements if isinstance(x, kind)]
        for extra in found[1:]:
            self.error(
                f'a second "{name}" line; the first is at {found[0].span.location}',
                extra.span,
                f'a policy has at most one "{name}" line across all its files',
            )
        return (found[0], self.ref(found[0].span)) if found else (None, None)

    def _approval_timeout(self, stmt: s.ApprovalTimeoutStmt | None) -> float:
        if stmt is None:
            return DEFAULT_APPROVAL_TIMEOUT
        seconds = parse_duration(stmt.duration.text)
        if seconds is None or seconds <= 0:
            self.error(
                f'invalid approval timeout "{stmt.duration.text}"',
                stmt.duration.span,
                f"write a duration such as {DURATION_EXAMPLES}",
            )
            return DEFAULT_APPROVAL_TIMEOUT
        return seconds

    # ---- credentials ----

    # ---- host blocks ----

    def _check_duplicate_hosts(self, nodes: list[s.HostBlock]) -> None:
        entries = []
        for node in nodes:
            for word in node.patterns:
                try:
                    entries.append((parse_host_pattern(word.text), word))
                except InvalidHost:
                    pass  # reported by _block
        seen: dict[tuple[str, bool, int], s.Word] = {}
        for pattern, word in entries:
            for port in pattern.ports():
                key = (pattern.name, pattern.wildcard, port)
                if key in seen and seen[key] is not word:
                    self.error(
                        f'host "{word.text}" is already claimed by the host block at {seen[key].span.location}',
                        word.span,
                        "a host belongs to one block: merge the two blocks",
                    )
                    break
                seen[key] = word

    def _block(self, node: s.HostBlock, credentials: dict[str, CredentialSpec]) -> CompiledBlock:
        patterns = []
        for word in node.patterns:
            try:
                patterns.append(str(parse_host_pattern(word.text)))
            except InvalidHost as exc:
                self.error(str(exc), word.span)
        rules: list[CompiledRule] = []
        limits: list[CompiledLimit] = []
        injects: list[CompiledInject] = []
        budgets: list[CompiledBudget] = []
        usage_settings: list[s.UsageSetting] = []
        tcp: CompiledRule | None = None
        mode: s.ModeStmt | None = None
        for item in node.items:
            if isinstance(item, s.ModeStmt):
                if mode is not None:
                    self.error(
                        f"a second mode line in this host block; the first is at {mode.span.location}",
                        item.span,
                        "a host block has at most one mode line",
                    )
                mode = mode or item
            elif isinstance(item, s.TcpRule):
                compiled = self._tcp_rule(item, node, tcp)
                tcp = tcp or compiled
            elif isinstance(item, s.Rule):
                rule = self._rule(item)
                if rule is not None:
                    self._warn_if_shadowed(rule, rules, item)
                    rules.append(rule)
            elif isinstance(item, s.Limit):
                limit = self._limit(item, patterns)
                if limit is not None:
                    limits.append(limit)
            elif isinstance(item, s.Budget):
                budget = self._budget(item, patterns, self._matcher(item.methods, item.paths, item.when))
                if budget is not None:
                    budgets.append(budget)
            elif isinstance(item, s.UsageSetting):
                usage_settings.append(item)
            else:
                inject = self._inject(item, credentials)
                if inject is not None:
                    injects.append(inject)
        if not rules and tcp is None:
            self.warn(
                f"host block {', '.join(w.text for w in node.patterns)} has no rule",
                node.span,
                "its requests get the default; add allow, block or approve rules",
            )
        ref = self.ref(node.span)
        header = RuleRef(ref.file, ref.line, "host " + ", ".join(w.text for w in node.patterns))
        unreadable = self._usage_setting(usage_settings, any(isinstance(i, s.Budget) for i in node.items))
        return CompiledBlock(
            tuple(patterns),
            tuple(rules),
            tuple(limits),
            tuple(injects),
            header,
            tcp,
            budgets=tuple(budgets),
            unreadable_usage=unreadable,
            mode=Mode(mode.mode) if mode else None,
        )

    def _tcp_rule(self, node: s.TcpRule, block: s.HostBlock, earlier: CompiledRule | None) -> CompiledRule | None:
        """`allow tcp` opens raw TCP to exactly the hosts and ports the block names, nothing wider."""
        if node.verdict == "approve":
            self.error("a raw TCP tunnel cannot be held for approval", node.span, "use allow tcp or block tcp")
            return None
        if earlier is not None:
            self.warn(
                f"this rule can never match: the tcp rule at {earlier.source.location} decides first",
                node.span,
                "remove it",
            )
            return None
        ok = True
        for word in block.patterns:
            try:
                pattern = parse_host_pattern(word.text)
            except InvalidHost:
                ok = False  # reported by _block
                continue
            if pattern.wildcard or pattern.port is None:
                self.error(
                    f'"{node.verdict} tcp" needs host blocks that name a host and port exactly, not "{word.text}"',
                    word.span,
                    "for example: host db.internal:5432 { allow tcp }",
                )
                ok = False
        if not ok:
            return None
        reason = node.reason.value if node.reason else None
        source = self.ref(node.span, self._rule_name(node.name))
        return CompiledRule(Verdict(node.verdict), RequestMatcher((), (), None), reason, source)

    def _inject(self, node: s.Inject, credentials: dict[str, CredentialSpec]) -> CompiledInject | None:
        name = node.credential.text
        when = self._condition(node.when) if node.when else None
        defined = {x.name.text for f in self.files for x in f.statements if isinstance(x, s.Credential)}
        if name not in defined:
            self.error(
                f'unknown credential "{name}"{did_you_mean(name, defined)}',
                node.credential.span,
                None if defined else f'define it: credential {name} {{ secret "{name}" ... }}',
            )
            return None
        if name not in credentials:
            return None  # the credential itself has an error, reported there
        return CompiledInject(name, when, self.ref(node.span))

    def _matcher(
        self, methods: tuple[s.Word, ...], paths: tuple[s.Word, ...], when: s.Condition | None
    ) -> RequestMatcher | None:
        ok = True
        for word in methods:
            if word.text not in HTTP_METHODS:
                self.error(
                    f'unknown HTTP method "{word.text}"{did_you_mean(word.text, HTTP_METHODS)}',
                    word.span,
                    "methods: " + ", ".join(HTTP_METHODS),
                )
                ok = False
        for word in paths:
            try:
                path_glob(word.text)
            except GlobError as exc:
                offset = getattr(exc, "offset", 0) or 0
                span = _shift(word.span, offset)
                self.error(str(exc), span)
                ok = False
        condition = self._condition(when) if when is not None else None
        if not ok or (when is not None and condition is None):
            return None
        return RequestMatcher(
            tuple(dict.fromkeys(w.text for w in methods)), tuple(dict.fromkeys(w.text for w in paths)), condition
        )

    def _rule(self, node: s.Rule) -> CompiledRule | None:
        match = self._matcher(node.methods, node.paths, node.when)
        if match is None:
            return None
        reason = node.reason.value if node.reason else None
        return CompiledRule(Verdict(node.verdict), match, reason, self.ref(node.span, self._rule_name(node.name)))

    def _rule_name(self, node: s.Value[str] | None) -> str:
        """A rule's `as "name"`: checked, and unique across the policy's files."""
        if node is None:
            return ""
        name = node.value
        if not RULE_NAME.fullmatch(name):
            self.error(
                f"invalid rule name {show(name)}",
                node.span,
                'a rule name is letters, digits and . _ - / (no spaces, no ":"), e.g. as "openai.chat"',
            )
            return ""
        first = self.rule_names.setdefault(name, node.span)
        if first is not node.span:
            self.error(
                f"rule name {show(name)} is already given to the rule at {first.location}",
                node.span,
                "a rule name names one rule across all the policy's files",
            )
        return name

    def _limit(self, node: s.Limit, block_patterns: list[str]) -> CompiledLimit | None:
        if node.unit not in PERIOD_SECONDS:
            self.error(
                f"a request limit counts per second, minute, hour or day, not per {node.unit}",
                node.span,
                f"for a longer span count tokens or dollars: limit 2000000 tokens per {node.unit}",
            )
            return None
        amount = as_int(node.amount.text)
        if amount is None or amount < 1:
            self.error(
                f'limit must be a whole number of requests, at least 1, not "{node.amount.text}"', node.amount.span
            )
            return None
        match = self._matcher(node.methods, node.paths, node.when)
        if match is None:
            return None
        ref = self.ref(node.span)
        key_text = "|".join(sorted(block_patterns)) + "|" + ref.text
        key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
        return CompiledLimit(key, amount, node.unit, node.per_agent, match, ref)

    def _warn_if_shadowed(self, rule: CompiledRule, earlier: list[CompiledRule], node: s.Rule) -> None:
        for previous in earlier:
            if _always_covers(previous.match, rule.match):
                self.warn(
                    f"this rule can never match: the rule at {previous.source.location} always decides first",
                    node.span,
                    "move it above that rule, or remove it",
                )
                return

    # ---- conditions ----

    # ---- tests ----


def _always_covers(earlier: RequestMatcher, later: RequestMatcher) -> bool:
    """Whether `earlier` matches every request `later` matches (a conservative check)."""
    if earlier.when is not None:
        return False
    if earlier.methods and (not later.methods or not set(later.methods) <= set(earlier.methods)):
        return False
    if not earlier.paths:
        return True
    if not later.paths:
        return False
    return all(any(_glob_covers(a, b) for a in earlier.paths) for b in later.paths)


def _glob_covers(outer: str, inner: str) -> bool:
    if outer == inner or outer == "/**":
        return True
    if outer.endswith("/**") and "*" not in outer[:-3]:
        prefix = outer[:-3]
        return inner == prefix or inner.startswith(prefix + "/")
    return False


def _shift(span: Span, offset: int) -> Span:
    return Span(
        span.file, span.line, span.column + offset, span.end_line, span.end_column, span.start + offset, span.end
    )
