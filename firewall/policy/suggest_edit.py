"""A proposal as text: the fragment a person reviews, and the candidate policy it would make.

The fragment holds one host block per block the rules go in, each rule under a comment saying how
many requests it covers and where it goes (a host the policy already has keeps its one block: the
rule is added there, not in a second block). The candidate is the policy's own files with the
rules inserted where they go, and the new host blocks in a new file: what `policy suggest`
compiles, tests and replays, and shows with `--diff`. Pure text work, no I/O.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from firewall.policy.compiler import CompileResult, compile_files
from firewall.policy.parser import parse_policy
from firewall.policy.suggest_model import Proposal, Suggestion, Where
from firewall.policy.syntax import HostBlock, Rule

NEW_FILE = "suggested.policy"
INDENT = "    "


@dataclass(frozen=True)
class Source:
    name: str  # the file's name in rule references (relative to the policy's folder)
    text: str


def fragment(proposal: Proposal, header: tuple[str, ...] = ()) -> str:
    """The rules as policy text to review, grouped by host block."""
    lines = [f"# {line}" for line in header]
    if not proposal.suggestions:
        return "\n".join([*lines, "# no rule to suggest"]) + "\n"
    lines += [
        f"# {len(proposal.suggestions)} rule(s) for {proposal.covered} request(s). Review each; a host the policy",
        "# already has keeps its one block: add the rule there, where its comment says. Nothing is",
        "# applied until `firewall policy apply`, which runs the policy's tests.",
    ]
    for patterns, group in _by_block(proposal.suggestions):
        block = group[0].placement.block
        lines.append("")
        where = f"add to the host block at {block.location}" if block else "a new host block"
        lines.append(f"# {where}")
        lines.append(f"host {', '.join(patterns)} {{")
        for s in group:
            lines += [f"{INDENT}# {line}" for line in _comment(s)]
            lines.append(f"{INDENT}{s.text}")
        lines.append("}")
    return "\n".join(lines) + "\n"


def _comment(s: Suggestion) -> list[str]:
    out = [s.why]
    if s.placement.where is Where.BEFORE_RULE:
        assert s.placement.before is not None
        out.append(f"goes just before {s.placement.before.location}: {s.placement.before.text}")
    elif s.placement.where is Where.BLOCK_END:
        out.append("goes at the end of the block")
    out += [f"e.g. {example}" for example in s.examples]
    return out


def _by_block(suggestions: tuple[Suggestion, ...]) -> list[tuple[tuple[str, ...], list[Suggestion]]]:
    groups: dict[tuple[object, tuple[str, ...]], list[Suggestion]] = {}
    for s in suggestions:
        groups.setdefault((s.placement.block, s.placement.patterns), []).append(s)
    return [(patterns, group) for (_, patterns), group in groups.items()]


def candidate(sources: list[Source], proposal: Proposal, comment: str | None = None) -> list[Source]:
    """The policy's files with the proposal's rules inserted, and its new host blocks in a new file;
    each rule under a comment: `comment`, or what it was suggested for."""
    inserts: dict[str, list[tuple[int, str]]] = {}
    new_blocks: list[str] = []
    by_name = {source.name: source for source in sources}
    for patterns, group in _by_block(proposal.suggestions):
        block = group[0].placement.block
        if block is None:
            body = "".join(f"{INDENT}# {comment or _why(s)}\n{INDENT}{s.text}\n" for s in group)
            new_blocks.append(f"host {', '.join(patterns)} {{\n{body}}}\n")
            continue
        source = by_name.get(block.file)
        if source is None:
            raise ValueError(f"the policy's file {block.file} is not among its sources")
        for s in group:
            inserts.setdefault(block.file, []).append(_insertion(source, s, comment or _why(s)))
    out = []
    for source in sources:
        text = source.text
        # The last place first, so earlier offsets stay right; at one place, in the proposal's order.
        for offset in sorted({o for o, _ in inserts.get(source.name, [])}, reverse=True):
            added = "".join(t for o, t in inserts[source.name] if o == offset)
            text = text[:offset] + added + text[offset:]
        out.append(Source(source.name, text))
    if new_blocks:
        names = {source.name for source in sources}
        name, n = NEW_FILE, 1
        while name in names:
            n += 1
            name = f"suggested-{n}.policy"
        out.append(Source(name, "\n".join(new_blocks)))
    return out


def _why(s: Suggestion) -> str:
    return f"suggested: {s.why}"


def _insertion(source: Source, s: Suggestion, comment: str) -> tuple[int, str]:
    """(offset, text): a comment and the rule, on lines of their own, indented as their neighbours."""
    text = source.text
    placement = s.placement
    assert placement.block is not None
    node = _host_block(source, placement.block.line)
    if placement.where is Where.BEFORE_RULE:
        assert placement.before is not None
        rule = _rule_at(node, placement.before.line)
        indent = _indent(text, _line_start(text, placement.before.line))
        # At the rule itself, not its line: a rule may share its line with the block's "{".
        return rule.span.start, f"# {comment}\n{indent}{s.text}\n{indent}"
    brace = node.span.end - 1  # the block's closing "}"
    if text[brace] != "}":
        raise ValueError(f"the host block at {source.name}:{node.span.line} does not end where it was parsed")
    line_start = text.rfind("\n", 0, brace) + 1
    indent = _indent(text, _line_start(text, node.items[0].span.line)) if node.items else INDENT
    lines = f"{indent}# {comment}\n{indent}{s.text}\n"
    if text[line_start:brace].strip():
        return brace, "\n" + lines
    return line_start, lines


def _line_start(text: str, line: int) -> int:
    offset = 0
    for _ in range(line - 1):
        offset = text.index("\n", offset) + 1
    return offset


def _indent(text: str, start: int) -> str:
    end = start
    while end < len(text) and text[end] in " \t":
        end += 1
    return text[start:end] or INDENT


def _rule_at(block: HostBlock, line: int) -> Rule:
    for item in block.items:
        if isinstance(item, Rule) and item.span.line == line:
            return item
    raise ValueError(f"no rule starts on line {line} of the host block at line {block.span.line}")


def _host_block(source: Source, line: int) -> HostBlock:
    for statement in parse_policy(source.text, source.name).statements:
        if isinstance(statement, HostBlock) and statement.span.line == line:
            return statement
    raise ValueError(f"no host block starts at {source.name}:{line}")


def compile_sources(sources: list[Source]) -> CompileResult:
    """Compile in-memory files as one policy, each named as given. Raises PolicyError."""
    files = [parse_policy(source.text, source.name) for source in sources]
    return compile_files(files, {source.name: source.name for source in sources})


def source_diff(before: list[Source], after: list[Source]) -> str:
    """A unified diff of each file that changed (a new file shows as wholly added)."""
    old = {source.name: source.text for source in before}
    out: list[str] = []
    for source in after:
        was = old.get(source.name)
        if was == source.text:
            continue
        out.extend(
            difflib.unified_diff(
                (was or "").splitlines(keepends=True),
                source.text.splitlines(keepends=True),
                f"a/{source.name}" if was is not None else "/dev/null",
                f"b/{source.name}",
            )
        )
    return "".join(out)


def named_sources(files: list[tuple[str, str]], compiled_names: dict[str, str]) -> list[Source]:
    """A stored version's (path as given to apply, text) pairs as Sources named as its rules name
    them: `compiled_names` maps a file's sha256 to its name (the compiled policy's `sources`)."""
    out = []
    for path, text in files:
        digest = hashlib.sha256(text.encode()).hexdigest()
        out.append(Source(compiled_names.get(digest, PurePosixPath(path).name), text))
    return out
