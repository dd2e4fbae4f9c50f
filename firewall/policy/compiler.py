"""Syntax trees of one or more policy files → one `CompiledPolicy`.

Every meaning check lives here: unknown fields, bad globs, duplicate hosts,
credentials that do not exist. All errors of all files are collected before
anything is raised; warnings (shadowed rules, unused credentials, empty host
blocks) are returned beside the policy.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass

from firewall.policy import syntax as s
from firewall.policy.compiled import (
    AllCond,
    AnyCond,
    CompareCond,
    CompiledBlock,
    CompiledInject,
    CompiledLimit,
    CompiledPolicy,
    CompiledRule,
    Cond,
    CredentialSpec,
    FieldRef,
    InCond,
    MatchCond,
    NotCond,
    RequestMatcher,
    SourceFile,
    path_glob,
)
from firewall.policy.decision import TUNNEL_METHOD, Mode, Request, RuleRef, Verdict
from firewall.policy.errors import CompileError, Diagnostic, Severity, Span, diagnostic
from firewall.policy.hosts import InvalidHost, normalize_host, parse_host_pattern
from firewall.policy.paths import GlobError

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
FIELD_KINDS = ("agent", "method", "path", "host", "query", "header", "json", "body.size")
NUMERIC_FIELDS = ("body.size",)
DEFAULT_APPROVAL_TIMEOUT = 120.0
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class ExpectCase:
    """One `expect` line of a `test` block, ready to run."""

    expected: str  # allow | block | approve | limit
    request: Request
    after: int | None
    source: RuleRef
    test_name: str


@dataclass(frozen=True)
class CompileResult:
    policy: CompiledPolicy
    tests: tuple[ExpectCase, ...]
    warnings: tuple[Diagnostic, ...]


def compile_files(files: list[s.PolicyFile]) -> CompileResult:
    """Compile parsed files as one policy; raise `CompileError` with every error."""
    return _Compiler(files).run()


def parse_duration(text: str) -> float | None:
    """`120s`, `5m`, `1h`, `250ms`, `2d` or a plain number of seconds; None if invalid."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?", text.strip())
    if not match:
        return None
    return float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


class _Compiler:
    def __init__(self, files: list[s.PolicyFile]):
        self.files = files
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.sources = {f.path: f.source for f in files}

    # ---- reporting ----

    def error(self, message: str, span: Span, hint: str | None = None) -> None:
        self.errors.append(diagnostic(Severity.ERROR, message, span, self.sources[span.file], hint))

    def warn(self, message: str, span: Span, hint: str | None = None) -> None:
        self.warnings.append(diagnostic(Severity.WARNING, message, span, self.sources[span.file], hint))

    def ref(self, span: Span) -> RuleRef:
        text = self.sources[span.file][span.start : span.end]
        return RuleRef(span.file, span.line, " ".join(text.split()))

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
        if self.errors:
            raise CompileError(self._in_source_order(self.errors))

        policy = CompiledPolicy(
            default=Verdict(default.verdict) if default else Verdict.BLOCK,
            default_source=default_source,
            mode=Mode(mode_stmt.mode) if mode_stmt else Mode.ENFORCE,
            approval_timeout=approval_timeout,
            credentials=tuple(credentials.values()),
            blocks=tuple(blocks),
            sources=tuple(SourceFile(f.path, hashlib.sha256(f.source.encode()).hexdigest()) for f in self.files),
        )
        tests = tuple(
            case
            for test in statements
            if isinstance(test, s.TestBlock)
            for case in self._test(test)
        )
        if self.errors:
            raise CompileError(self._in_source_order(self.errors))
        return CompileResult(policy, tests, tuple(self._in_source_order(self.warnings)))

    def _in_source_order(self, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
        """Diagnostics by file (in the order given), then by position, as a reader meets them."""
        file_order = {f.path: index for index, f in enumerate(self.files)}
        return sorted(diagnostics, key=lambda d: (file_order[d.span.file], d.span.start))

    def _single(self, statements, kind, name: str):
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
                "write a duration such as 90s, 5m or 1h",
            )
            return DEFAULT_APPROVAL_TIMEOUT
        return seconds

    # ---- credentials ----

    def _credentials(self, nodes: list[s.Credential]) -> dict[str, CredentialSpec]:
        specs: dict[str, CredentialSpec] = {}
        first_seen: dict[str, s.Credential] = {}
        for node in nodes:
            name = node.name.text
            if name in first_seen:
                self.error(
                    f'credential "{name}" is defined twice; the first is at {first_seen[name].span.location}',
                    node.name.span,
                )
                continue
            first_seen[name] = node
            spec = self._credential(node)
            if spec is not None:
                specs[name] = spec
        return specs

    def _credential(self, node: s.Credential) -> CredentialSpec | None:
        secrets = [x for x in node.lines if isinstance(x, s.SecretLine)]
        carriers = [x for x in node.lines if isinstance(x, (s.HeaderLine, s.QueryLine, s.OAuthLine))]
        settings = [x for x in node.lines if isinstance(x, s.OAuthSetting)]
        name = node.name.text
        ok = True
        if len(secrets) != 1:
            span = secrets[1].span if secrets else node.name.span
            self.error(
                f'credential "{name}" needs exactly one secret line',
                span,
                f'name its vault entry: secret "{name}"',
            )
            ok = False
        if len(carriers) != 1:
            span = carriers[1].span if carriers else node.name.span
            self.error(
                f'credential "{name}" needs exactly one of header, query or oauth',
                span,
                'for example: header Authorization = "Bearer {secret}"',
            )
            return None
        carrier = carriers[0]
        if settings and not isinstance(carrier, s.OAuthLine):
            self.error(f'"{settings[0].key}" only applies to an oauth credential', settings[0].span)
            ok = False
        seen_keys: set[str] = set()
        for setting in settings:
            if setting.key in seen_keys:
                self.error(f'"{setting.key}" is set twice in credential "{name}"', setting.span)
                ok = False
            seen_keys.add(setting.key)
            if setting.key == "token_url" and not str(setting.value.value).startswith("https://"):
                self.error("token_url must be an https:// URL", setting.value.span)
                ok = False
        if isinstance(carrier, s.OAuthLine):
            kind, target, template = "oauth", "", ""
        else:
            kind = "header" if isinstance(carrier, s.HeaderLine) else "query"
            target_word = carrier.header if kind == "header" else carrier.parameter
            target = target_word.text.lower() if kind == "header" else target_word.text
            template = carrier.template.value
            ok = self._check_template(template, carrier.template.span) and ok
            if kind == "header" and target in ("host", "content-length", "transfer-encoding", "connection"):
                self.error(f'header "{target_word.text}" cannot carry a credential', target_word.span)
                ok = False
        if not ok:
            return None
        return CredentialSpec(
            name=name,
            secret=secrets[0].entry.value,
            kind=kind,
            target=target,
            template=template,
            settings=tuple(sorted((x.key, str(x.value.value)) for x in settings)),
            source=self.ref(node.span),
        )

    def _check_template(self, template: str, span: Span) -> bool:
        placeholders = re.findall(r"\{[^}]*\}", template)
        if placeholders.count("{secret}") != 1 or len(placeholders) != 1:
            self.error(
                "a credential template must contain {secret} exactly once and no other {…}",
                span,
                'for example: "Bearer {secret}"',
            )
            return False
        return True

    def _warn_unused_credentials(self, credentials: dict[str, CredentialSpec], blocks: list[CompiledBlock]):
        used = {inject.credential for block in blocks for inject in block.injects}
        for node in (x for f in self.files for x in f.statements if isinstance(x, s.Credential)):
            if node.name.text not in used and node.name.text in credentials:
                self.warn(
                    f'credential "{node.name.text}" is not injected by any host block',
                    node.name.span,
                    f"add `inject {node.name.text}` to the host block that needs it, or remove it",
                )

    # ---- host blocks ----

    def _check_duplicate_hosts(self, nodes: list[s.HostBlock]) -> None:
        entries = []
        for node in nodes:
            for word in node.patterns:
                try:
                    entries.append((parse_host_pattern(word.text), word))
                except InvalidHost:
                    pass  # reported by _block
        seen: dict[tuple, s.Word] = {}
        for pattern, word in entries:
            for port in pattern.ports():
                key = (pattern.name, pattern.wildcard, port)
                if key in seen and seen[key] is not word:
                    self.error(
                        f'host "{word.text}" is already claimed by the host block at '
                        f"{seen[key].span.location}",
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
        rules, limits, injects = [], [], []
        tcp: CompiledRule | None = None
        for item in node.items:
            if isinstance(item, s.TcpRule):
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
        return CompiledBlock(tuple(patterns), tuple(rules), tuple(limits), tuple(injects), header, tcp)

    def _tcp_rule(self, node: s.TcpRule, block: s.HostBlock, earlier: CompiledRule | None) -> CompiledRule | None:
        """`allow tcp` opens raw TCP to exactly the hosts and ports the block names, nothing wider."""
        if node.verdict == "approve":
            self.error("a raw TCP tunnel cannot be held for approval", node.span, "use allow tcp or block tcp")
            return None
        if earlier is not None:
            self.warn(f"this rule can never match: the tcp rule at {earlier.source.location} decides first",
                      node.span, "remove it")
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
                    word.span, "for example: host db.internal:5432 { allow tcp }",
                )
                ok = False
        if not ok:
            return None
        reason = node.reason.value if node.reason else None
        return CompiledRule(Verdict(node.verdict), RequestMatcher((), (), None), reason, self.ref(node.span))

    def _inject(self, node: s.Inject, credentials: dict[str, CredentialSpec]) -> CompiledInject | None:
        name = node.credential.text
        when = self._condition(node.when) if node.when else None
        defined = {x.name.text for f in self.files for x in f.statements if isinstance(x, s.Credential)}
        if name not in defined:
            self.error(f'unknown credential "{name}"{did_you_mean(name, defined)}', node.credential.span,
                       None if defined else f"define it: credential {name} {{ secret \"{name}\" ... }}")
            return None
        if name not in credentials:
            return None  # the credential itself has an error, reported there
        return CompiledInject(name, when, self.ref(node.span))

    def _matcher(self, methods: tuple[s.Word, ...], paths: tuple[s.Word, ...], when) -> RequestMatcher | None:
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
        return CompiledRule(Verdict(node.verdict), match, reason, self.ref(node.span))

    def _limit(self, node: s.Limit, block_patterns: list[str]) -> CompiledLimit | None:
        amount = _as_int(node.amount.text)
        if amount is None or amount < 1:
            self.error(f'limit must be a whole number of requests, at least 1, not "{node.amount.text}"',
                       node.amount.span)
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

    def _condition(self, node) -> Cond | None:
        """Compile a condition; None (with errors reported) if any part is invalid."""
        if isinstance(node, s.And) or isinstance(node, s.Or):
            left, right = self._condition(node.left), self._condition(node.right)
            if left is None or right is None:
                return None
            kind = AllCond if isinstance(node, s.And) else AnyCond
            items = []
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
            if node.op in ("<", "<=", ">", ">=") and not _is_number(node.value.value):
                self.error(f'"{node.op}" compares numbers; {_show(node.value.value)} is not a number',
                           node.value.span)
                return None
            if field.kind in NUMERIC_FIELDS and not _is_number(node.value.value):
                self.error(f'{field.text} is a number; compare it with a number', node.value.span)
                return None
            return CompareCond(field, node.op, self._literal(field, node.value.value))
        if isinstance(node, s.InList):
            return InCond(field, tuple(self._literal(field, v.value) for v in node.values), node.negated)
        if not isinstance(node.pattern.value, str):
            self.error("matches takes a quoted glob", node.pattern.span)
            return None
        return MatchCond(field, node.pattern.value)

    def _literal(self, field: FieldRef, value):
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
                None if did_you_mean(text, suggestions) else
                "fields: agent, method, path, host, query.NAME, header.NAME, json.a.b, body.size",
            )
        return None

    # ---- tests ----

    def _test(self, node: s.TestBlock) -> list[ExpectCase]:
        cases = []
        for expect in node.expects:
            case = self._expect(expect, node.name.value)
            if case is not None:
                cases.append(case)
        return cases

    def _expect(self, node: s.Expect, test_name: str) -> ExpectCase | None:
        if node.method.text not in (*HTTP_METHODS, TUNNEL_METHOD):
            self.error(f'unknown HTTP method "{node.method.text}"{did_you_mean(node.method.text, HTTP_METHODS)}',
                       node.method.span)
            return None
        headers = []
        for header in node.headers:
            name, sep, value = str(header.value).partition(":")
            if not sep or not name.strip():
                self.error(f'header {_show(header.value)} is not "Name: value"', header.span)
                return None
            headers.append((name.strip(), value.strip()))
        after = None
        if node.after is not None:
            after = _as_int(node.after.text)
            if after is None or after < 0:
                self.error(f'"after" takes a whole number of requests, not "{node.after.text}"', node.after.span)
                return None
        if node.expected == "limit" and after is None:
            self.error("expect limit needs `after N requests`", node.span,
                       "for example: expect limit GET https://api.example.com/ after 60 requests")
            return None
        agent = node.agent.value if node.agent else None
        try:
            if node.has_json:
                request = Request.with_json(node.method.text, node.url.text, node.json_body,
                                            agent=agent, headers=tuple(headers))
            else:
                request = Request.from_url(node.method.text, node.url.text, agent=agent, headers=tuple(headers))
        except ValueError as exc:
            self.error(str(exc), node.url.span)
            return None
        return ExpectCase(node.expected, request, after, self.ref(node.span), test_name)


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
    return Span(span.file, span.line, span.column + offset, span.end_line, span.end_column,
                span.start + offset, span.end)


def _as_int(text: str) -> int | None:
    return int(text) if re.fullmatch(r"\d+", text) else None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value) -> str:
    return json.dumps(value)

