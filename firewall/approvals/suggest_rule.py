"""The rule that would let an approved request through next time, proposed and written down for review.

Used by the prompt's `s` key and `firewall approvals approve ID --suggest`: the request's rule is
proposed as `policy suggest` proposes it (firewall/policy/suggest.py: the narrowest rule, just before
the approve rule that held it, with that rule's condition, for this agent only) and compiled into the
policy in force (`propose_for`). Applied, it goes into the policy's own files (rule_change.py); for
review (`--suggest-to FILE`, or when the policy is not from files this person can edit here) it is
checked with the policy's tests and appended to a file (`suggest_rule`, `write`): putting that in
force stays `firewall policy apply`, which runs the tests again.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from firewall.approvals.records import Approval
from firewall.policy.compiler import CompileResult
from firewall.policy.errors import PolicyError
from firewall.policy.suggest import SKIP_WHY, Observed, Options, Proposal, Seen, propose
from firewall.policy.suggest_edit import NEW_FILE, Source, candidate, compile_sources, fragment, named_sources
from firewall.policy.testing import run_tests
from firewall.state import policy_store
from firewall.text import iso_utc

if TYPE_CHECKING:
    import sqlite_utils


class SuggestError(Exception):
    """No rule could be proposed or written; the message says why and what to do."""


@dataclass(frozen=True)
class Suggested:
    rules: tuple[str, ...]  # the rules' text
    where: tuple[str, ...]  # where each goes
    tests_hold: int
    tests_fail: int
    text: str  # the fragment to write
    path: Path  # where it is to be written


def on_disk(path: str, origin: str, cwd: Path) -> Path:
    """Where a stored version's source file is: where it was read from (`origin`, absolute), or, for
    versions stored before that was kept, its path as given to apply, read from `cwd`."""
    if origin:
        return Path(origin)
    return Path(path) if Path(path).is_absolute() else cwd / path


def default_file(sources: tuple[tuple[str, str], ...], cwd: Path, origins: tuple[str, ...] = ()) -> Path:
    """`suggested.policy` beside the policy in force: in the folder of its first file that is still
    where it was applied from, with the same text, in a folder this user can write; else in `cwd`."""
    for i, (path, text) in enumerate(sources):
        file = on_disk(path, origins[i] if i < len(origins) else "", cwd)
        try:
            if file.read_text(encoding="utf-8") == text and os.access(file.parent, os.W_OK):
                return file.parent / NEW_FILE
        except (OSError, UnicodeDecodeError):
            continue
    return cwd / NEW_FILE


def observed(row: Approval) -> Observed:
    parts = urlsplit(row.url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise SuggestError(f"{row.id}: its URL {row.url!r} names no port a rule can name") from None
    if not parts.hostname:
        raise SuggestError(f"{row.id}: its URL {row.url!r} names no host")
    return Observed(
        Seen.APPROVED,
        row.method,
        parts.scheme,
        parts.hostname,
        port,
        parts.path or "/",
        parts.query,
        row.agent,
        row.rule,
    )


@dataclass(frozen=True)
class Proposed:
    """The rule proposed for an approved request, against the version in force."""

    version: policy_store.PolicyVersion
    sources: list[Source]  # the version's files, named as its rules name them
    base: CompileResult  # those compiled
    proposal: Proposal
    after: list[Source]  # the files with the rule where the proposal puts it (a new block: a new file)
    with_rule: CompileResult  # those compiled


def propose_for(db: sqlite_utils.Database, row: Approval) -> Proposed:
    """The narrowest rule that would let `row` through, compiled into the policy in force. Raises SuggestError."""
    version = policy_store.active_version(db)
    if version is None:
        raise SuggestError("no policy is in force to suggest a rule for; apply one with `firewall policy apply PATH`")
    try:
        compiled = version.load()
    except policy_store.PolicyStoreError as exc:
        raise SuggestError(str(exc)) from None
    sources = named_sources(list(version.sources), {s.sha256: s.path for s in compiled.sources})
    try:
        base = compile_sources(sources)
        proposal = propose(base.policy, [observed(row)], Options(min_count=1, agents=(row.agent,)))
        if not proposal.suggestions:
            why = ", ".join(SKIP_WHY[key] for key in proposal.skipped) or "nothing to propose"
            raise SuggestError(f"no rule to suggest for {row.id}: {why}")
        after = candidate(sources, proposal, f"from approval {row.id} (agent {row.agent})")
        with_rule = compile_sources(after)
    except (PolicyError, ValueError) as exc:  # ValueError: the stored files do not hold what the policy says
        raise SuggestError(f"the policy in force does not compile with the suggested rule: {exc}") from None
    return Proposed(version, sources, base, proposal, after, with_rule)


def suggest_rule(
    db: sqlite_utils.Database, row: Approval, by: str, to: Path | None = None, cwd: Path | None = None
) -> Suggested:
    """Propose the rule that would let `row` through (not yet written: `write`), to go to `to`
    (default: `default_file`). Raises SuggestError."""
    proposed = propose_for(db, row)
    version, proposal, with_rule = proposed.version, proposed.proposal, proposed.with_rule
    outcomes = run_tests(with_rule.policy, with_rule.tests)
    failed = sum(not o.passed for o in outcomes)
    header = (
        f"suggested for {row.id} ({row.method} {row.url}, agent {row.agent}) by {by} at {iso_utc(time.time())},",
        f"against policy version {version.version}; with it the policy's tests: {len(outcomes) - failed} hold, "
        f"{failed} do not",
    )
    return Suggested(
        tuple(s.text for s in proposal.suggestions),
        tuple(s.placement.describe for s in proposal.suggestions),
        len(outcomes) - failed,
        failed,
        fragment(proposal, header),
        to if to is not None else default_file(version.sources, cwd or Path.cwd(), version.origins),
    )


def write(suggested: Suggested) -> None:
    """Append the suggestion to its file (created if need be). Raises SuggestError."""
    try:
        with suggested.path.open("a", encoding="utf-8") as out:
            if out.tell():
                out.write("\n")
            out.write(suggested.text)
    except OSError as exc:
        raise SuggestError(f"cannot write the suggested rule to {suggested.path}: {exc.strerror}") from None
