"""An approved request's rule, put into the policy's own files: the change a person confirms.

The prompt's `s` key and `firewall approvals approve ID --suggest` (without `--suggest-to`) use it:
the rule `propose_for` proposes (suggest_rule.py) is placed where `policy suggest` would place it,
in the files of the version in force; `plan` compiles the result, runs the policy's tests with it
and returns the change as a diff to show. After the person confirms, `write_files` writes the files
and the CLI puts the compiled result in force as a new version (cli/applying.py, the same path as
`firewall policy apply`).

The files are edited only when they are the policy in force: each file the rule goes into must be
where the version was applied from, hold exactly the text that is in force, and be writable by this
user (`NotInFiles` says which is not so; the caller falls back to the review file). A rule that
needs a new host block (no block names the host any more) is not applied either: a new file would
not be part of the policy the next time it is applied from the same paths.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from firewall.approvals.records import Approval
from firewall.approvals.suggest_rule import SuggestError, on_disk, propose_for
from firewall.policy import CompiledPolicy
from firewall.policy.suggest_edit import source_diff
from firewall.policy.testing import run_tests

if TYPE_CHECKING:
    import sqlite_utils


class NotInFiles(SuggestError):
    """The policy in force is not from files this person can edit here; the message says which and why."""


@dataclass(frozen=True)
class FileEdit:
    file: Path  # on disk
    before: str  # its text, in force
    after: str  # with the rule


@dataclass(frozen=True)
class RuleChange:
    approval: Approval
    by: str  # who answers it, and where: "alice via prompt on pts/3"
    against: int  # the version in force it was made against
    rules: tuple[str, ...]  # the rules' text
    where: tuple[str, ...]  # where each goes
    edits: tuple[FileEdit, ...]
    diff: str  # unified diff of the files, named as the policy's rules name them
    policy: CompiledPolicy  # the policy with the rule
    sources: tuple[tuple[str, str], ...]  # the new version's (path as applied, text)
    origins: tuple[str, ...]  # where each was read from
    tests: int  # the policy's expectations: with the rule, all hold
    failures: tuple[str, ...]  # the expectations that do not hold with the rule; then it is not applied

    @property
    def note(self) -> str:
        """The new version's note in `policy history`."""
        row = self.approval
        return f"rule from approval {row.id} ({row.method} {row.url}, agent {row.agent}), by {self.by}"


def plan(db: sqlite_utils.Database, row: Approval, by: str, cwd: Path | None = None) -> RuleChange:
    """The change that puts the rule for `row` into the policy's files. Raises SuggestError (no rule:
    the message says why), NotInFiles (the files cannot take it here)."""
    proposed = propose_for(db, row)
    version, sources = proposed.version, proposed.sources
    where = cwd or Path.cwd()
    if any(s.placement.block is None for s in proposed.proposal.suggestions):
        raise NotInFiles(
            f"the rule for {row.id} needs a new host block (no host block of version {version.version} names "
            "its host now), which is added by hand"
        )
    after = proposed.after
    origins = [
        str(on_disk(path, version.origins[i] if i < len(version.origins) else "", where).absolute())
        for i, (path, _) in enumerate(version.sources)
    ]
    edits = []
    for (path, text), new, origin in zip(version.sources, after, origins, strict=True):
        if new.text == text:
            continue
        _editable(Path(origin), path, text, version.version)
        edits.append(FileEdit(Path(origin), text, new.text))
    with_rule = proposed.with_rule
    outcomes = run_tests(with_rule.policy, with_rule.tests)
    # Named where they are in the files as they are now (the rule moves the lines below it).
    failures = tuple(
        f"{before.source.location}  {before.source.text}: expected {o.case.expected}, got {o.actual}"
        for before, o in zip(proposed.base.tests, outcomes, strict=True)
        if not o.passed
    )
    return RuleChange(
        row,
        by,
        version.version,
        tuple(s.text for s in proposed.proposal.suggestions),
        tuple(s.placement.describe for s in proposed.proposal.suggestions),
        tuple(edits),
        source_diff(sources, after),
        with_rule.policy,
        tuple((path, new.text) for (path, _), new in zip(version.sources, after, strict=True)),
        tuple(origins),
        len(outcomes),
        failures,
    )


def _editable(file: Path, path: str, text: str, version: int) -> None:
    """Raise NotInFiles unless `file` holds `text` and this user may replace it."""
    head = f"the policy in force (version {version}) is not from files you can edit here: {file}"
    try:
        now = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotInFiles(f"{head} no longer exists (applied as {path})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotInFiles(f"{head} cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    if now != text:
        raise NotInFiles(
            f"{head} has changed since it was applied; apply it first (`firewall policy apply`) or add the rule by hand"
        )
    if not os.access(file, os.W_OK) or not os.access(file.parent, os.W_OK):
        raise NotInFiles(f"{head} (or its folder) is not writable by this user")


def write_files(change: RuleChange) -> None:
    """Replace each file with its text with the rule, each at once (a temporary file renamed over it).
    Raises SuggestError, with every file as it was, when one changed since `plan` or cannot be written."""
    for edit in change.edits:
        try:
            if edit.file.read_text(encoding="utf-8") != edit.before:
                raise SuggestError(f"{edit.file} changed while the rule was shown; nothing was written")
        except (OSError, UnicodeDecodeError) as exc:
            raise SuggestError(f"{edit.file} cannot be read any more ({exc}); nothing was written") from None
    done: list[FileEdit] = []
    try:
        for edit in change.edits:
            _replace(edit.file, edit.after)
            done.append(edit)
    except OSError as exc:
        _put_back(done)
        raise SuggestError(f"cannot write {edit.file}: {exc.strerror or exc}; nothing was written") from None


def restore_files(change: RuleChange) -> None:
    """Put every file back as it was before `write_files` (the version could not be stored)."""
    _put_back(list(change.edits))


def _put_back(edits: list[FileEdit]) -> None:
    for edit in edits:
        try:
            _replace(edit.file, edit.before)
        except OSError:
            pass  # best effort: the text in force is still in the version history


def _replace(file: Path, text: str) -> None:
    file = Path(os.path.realpath(file))  # a link to the policy stays a link: its target is replaced
    mode = file.stat().st_mode & 0o7777
    fd, temporary = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
