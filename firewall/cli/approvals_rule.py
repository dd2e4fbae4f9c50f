"""`firewall approvals approve ID --suggest`: allow a held request and add the rule that lets it
through to the policy's own files, as the prompt's `s` key does (approvals/rule_change.py): the
diff shown, confirmed (y/N, or --yes), the policy's tests run with it, put in force as a new version
by the same path as `policy apply` (cli/applying.py).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable

import typer

from firewall.approvals import records, store
from firewall.approvals.rule_change import NotInFiles, RuleChange, plan
from firewall.approvals.suggest_rule import SuggestError, suggest_rule, write
from firewall.cli import colour
from firewall.cli.applying import ApplyRefused, adopt_rule, print_applied
from firewall.cli.errors import fail, warn
from firewall.cli.state import database_or_exit, home_or_exit

CLI_VIA = "cli"
ONCE = "approve without --suggest to let it through once"

Answer = Callable[..., records.Answer]
Approved = Callable[[records.Answer, float | None], None]


def approve_with_rule(approval_id: str, seconds: float | None, yes: bool, answer: Answer, approved: Approved) -> None:
    home = home_or_exit()
    db = database_or_exit(home)
    try:
        row = store.get(db, approval_id)
        if row is None:
            fail(f"no approval request {approval_id}; list them with `firewall approvals list --all`")
        user = getpass.getuser()
        try:
            change = plan(db, row, f"{user} via {CLI_VIA}")
        except NotInFiles as exc:
            _for_review(db, row, user, str(exc), seconds, answer, approved)
            return
        except SuggestError as exc:
            fail(f"{exc}; nothing was approved ({ONCE})")
        if change.failures:
            _tests_fail(change, seconds, answer, approved)
        _show(change)
        if not yes and not _confirmed():
            fail(
                f"nothing changed: the rule was not added and {row.id} is still waiting; "
                f"answer with --yes to apply it, or {ONCE}"
            )
        approved(answer(approval_id, approve=True, grant_for=seconds), seconds)
        try:
            applied = adopt_rule(db, home, change)
        except ApplyRefused as exc:
            fail(f"approved, but the rule was not added: {exc}")
    finally:
        db.close()
    print_applied(applied)
    typer.echo(f"rule added to {', '.join(str(edit.file) for edit in change.edits)}; history: {change.note}")


def _for_review(db, row, user: str, why: str, seconds, answer: Answer, approved: Approved) -> None:
    """The policy's files cannot take the rule here: approve, and write the rule for review."""
    warn(f"{why}; the rule is written for review instead")
    try:
        suggested = suggest_rule(db, row, user)
    except SuggestError as exc:
        fail(f"{exc}; nothing was approved ({ONCE})")
    approved(answer(row.id, approve=True, grant_for=seconds), seconds)
    write_for_review(suggested)


def write_for_review(suggested) -> None:
    """Write the suggested rule to its review file (the request is approved already) and say so."""
    try:
        write(suggested)
    except SuggestError as exc:
        fail(f"approved, but {exc}")
    for rule, where in zip(suggested.rules, suggested.where, strict=True):
        typer.echo(f"suggested rule, for {where}:\n    {rule}")
    typer.echo(
        f"written to {suggested.path} for review (the policy's tests with it: {suggested.tests_hold} hold, "
        f"{suggested.tests_fail} do not); put it in force with `firewall policy apply`"
    )


def _tests_fail(change: RuleChange, seconds, answer: Answer, approved: Approved) -> None:
    """A rule that breaks a test is not added: approve once, name the failures, exit 1."""
    approved(answer(change.approval.id, approve=True, grant_for=seconds), seconds)
    for failure in change.failures:
        typer.echo(f"FAIL  {failure}", err=True)
    for rule in change.rules:
        typer.echo(f"the rule: {rule}", err=True)
    fail(
        f"approved {change.approval.id} once, but the rule was not added: with it {len(change.failures)} of "
        f"{change.tests} expectation(s) of the policy do not hold; the policy is unchanged"
    )


def _show(change: RuleChange) -> None:
    for rule, where in zip(change.rules, change.where, strict=True):
        typer.echo(f"the rule, for {where}:\n    {rule}")
    typer.echo("")
    for line in change.diff.splitlines():
        colour.echo([(line, colour.diff_style(line))])
    typer.echo("")
    typer.echo(f"with it the policy's {change.tests} expectation(s) hold (in force now: version {change.against})")


def _confirmed() -> bool:
    try:
        return typer.confirm(
            "Allow the request and apply the policy with this rule as a new version?", default=False, err=True
        )
    except (typer.Abort, EOFError):  # no answer (stdin closed): no
        return False
