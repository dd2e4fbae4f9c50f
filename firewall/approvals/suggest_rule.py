"""The rule that would let an approved request through next time, proposed and written down for review.

Used by the prompt's `s` key and `firewall approvals approve ID --suggest`: the request's rule is
proposed as `policy suggest` proposes it (firewall/policy/suggest.py: the narrowest rule, just before
the approve rule that held it, with that rule's condition, for this agent only), compiled into the
policy in force with the policy's tests run, and appended to a file for a person to review. Never
applied: putting it in force stays `firewall policy apply`, which runs the tests again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from firewall.approvals.records import Approval
from firewall.policy.errors import PolicyError
from firewall.policy.suggest import SKIP_WHY, Observed, Options, Seen, propose
from firewall.policy.suggest_edit import NEW_FILE, candidate, compile_sources, fragment, named_sources
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


def default_file(sources: tuple[tuple[str, str], ...], cwd: Path) -> Path:
    """`suggested.policy` beside the policy in force: in the folder of its first file that is still
    where it was applied from, with the same text; else in `cwd`."""
    for path, text in sources:
        file = Path(path) if Path(path).is_absolute() else cwd / path
        try:
            if file.read_text(encoding="utf-8") == text:
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


def suggest_rule(
    db: sqlite_utils.Database, row: Approval, by: str, to: Path | None = None, cwd: Path | None = None
) -> Suggested:
    """Propose the rule that would let `row` through (not yet written: `write`), to go to `to`
    (default: `default_file`). Raises SuggestError."""
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
        with_rule = compile_sources(candidate(sources, proposal))
    except (PolicyError, ValueError) as exc:  # ValueError: the stored files do not hold what the policy says
        raise SuggestError(f"the policy in force does not compile with the suggested rule: {exc}") from None
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
        to if to is not None else default_file(version.sources, cwd or Path.cwd()),
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
