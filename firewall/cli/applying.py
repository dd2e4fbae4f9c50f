"""Putting a compiled policy in force: the one path `firewall policy apply` and an approval's rule
(the prompt's `s` key, `approvals approve --suggest`) take to a new policy version.

The tests have been run by the caller (an approval's rule is refused by rule_change.py when one
fails); here: the vault holds every credential the policy injects, the content is not the one in
force already, the version is stored and made active in one transaction (a running proxy polls the
active version and swaps it in within a second), and the grants whose rule left the policy end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from firewall.approvals.records import Grant
from firewall.cli.grant_sync import end_orphan_grants, ended_line
from firewall.policy import CompiledPolicy
from firewall.policy.diff import diff_policies
from firewall.state import policy_store

if TYPE_CHECKING:
    import sqlite_utils

    from firewall.approvals.rule_change import RuleChange
    from firewall.state.home import Home


class ApplyRefused(Exception):
    """The policy was not put in force; the message says why and what to do."""


@dataclass(frozen=True)
class Applied:
    version: policy_store.PolicyVersion | None  # None: the same content was in force already
    previous: policy_store.PolicyVersion | None
    changes: tuple[str, ...]  # the rule changes, as diff_policies words them
    ended: tuple[Grant, ...]
    warnings: tuple[str, ...]  # the version in force could not be read (the changes are against no policy)

    def lines(self) -> list[str]:
        """What `policy apply` prints after the warnings."""
        if self.version is None:
            assert self.previous is not None
            return [
                f"unchanged: version {self.previous.version} (sha256 {self.previous.sha256[:16]}) is already in force"
            ]
        return [
            *self.changes,
            *(ended_line(grant) for grant in self.ended),
            f"applied: version {self.version.version} (sha256 {self.version.sha256[:16]}) is now in force",
        ]


def print_applied(applied: Applied) -> None:
    """The warnings on stderr, then what changed, as `policy apply` prints them."""
    import typer

    from firewall.cli.errors import warn

    for line in applied.warnings:
        warn(line)
    for line in applied.lines():
        typer.echo(line)


def put_in_force(
    db: sqlite_utils.Database,
    home: Home,
    policy: CompiledPolicy,
    sources: list[tuple[str, str]],
    *,
    origins: list[str] | None = None,
    note: str = "",
    tests: str = "",
) -> Applied:
    """Make `policy` (whose tests the caller ran: `tests` says how they went) the version in force.
    Raises ApplyRefused; nothing is stored then."""
    missing = missing_secrets(home, policy.secrets())
    if missing:
        raise ApplyRefused(
            "the policy injects credentials whose vault entries do not exist: "
            + ", ".join(missing)
            + "; add them with `firewall secrets add NAME` first"
        )
    previous = policy_store.active_version(db)
    warnings: list[str] = []
    in_force = loaded_in_force(previous, warnings)  # None also when the active version's row was damaged
    if in_force is not None and in_force.sha256 == policy.sha256:
        return Applied(None, previous, (), (), tuple(warnings))
    changes = diff_policies(in_force, policy)
    version = policy_store.store_version(db, policy, sources, note=note, tests=tests, origins=origins)
    ended = end_orphan_grants(db, policy, time.time())
    return Applied(version, previous, tuple(changes), tuple(ended), tuple(warnings))


def adopt_rule(db: sqlite_utils.Database, home: Home, change: RuleChange) -> Applied:
    """Write an approval's rule into the policy's files and put the result in force as a new version;
    the files are put back as they were when that fails. Raises ApplyRefused."""
    from firewall.approvals.rule_change import restore_files, write_files
    from firewall.approvals.suggest_rule import SuggestError

    try:
        write_files(change)
    except SuggestError as exc:
        raise ApplyRefused(str(exc)) from None
    try:
        applied = put_in_force(
            db,
            home,
            change.policy,
            list(change.sources),
            origins=list(change.origins),
            note=change.note,
            tests=f"{change.tests} passed" if change.tests else "none",
        )
    except BaseException:
        restore_files(change)
        raise
    if applied.version is None:  # cannot happen (a rule was added), but never leave files the store does not hold
        restore_files(change)
        raise ApplyRefused("the policy with the rule is the one in force already; nothing changed")
    return applied


def missing_secrets(home: Home, names: tuple[str, ...]) -> list[str]:
    """The vault entries of `names` that do not exist. Raises ApplyRefused when the vault cannot be read."""
    if not names:
        return []
    from firewall.vault import Vault, VaultError

    if not home.vault.exists():
        return list(names)
    try:
        present = set(Vault.open(home).names())
    except VaultError as exc:
        raise ApplyRefused(str(exc)) from None
    return [name for name in names if name not in present]


def loaded_in_force(version: policy_store.PolicyVersion | None, warnings: list[str]) -> CompiledPolicy | None:
    """The compiled policy of the version in force, to diff against; None (everything shows as new)
    with a warning when it cannot be loaded: the version that replaces it is the way out."""
    if version is None:
        return None
    try:
        return version.load()
    except policy_store.PolicyStoreError as exc:
        warnings.append(
            f"{str(exc).partition('; put a good version')[0]}; it is replaced now, so the changes below are "
            "against no policy"
        )
        return None
