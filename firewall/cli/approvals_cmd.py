"""`firewall approvals`: answer requests the proxy holds for a person, in the terminal or by script."""

from __future__ import annotations

import getpass
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import sqlite_utils
import typer

from firewall.approvals import grants as grant_rows
from firewall.approvals import records, render, store
from firewall.cli import colour
from firewall.cli.errors import fail
from firewall.cli.grant_sync import end_orphan_grants, ended_line, in_force
from firewall.cli.state import database_or_exit, home_or_exit
from firewall.text import DURATION_EXAMPLES, parse_duration

app = typer.Typer(no_args_is_help=False, add_completion=False)
DEFAULT_GRANT = "10m"
CLI = "cli"  # `decided_via` of an answer given by `approvals approve|deny`

Json = Annotated[bool, typer.Option("--json", help="Output JSON.")]
SuggestTo = Annotated[
    Path | None,
    typer.Option(
        "--suggest-to",
        metavar="FILE",
        help="Write suggested rules to FILE (appended) for review instead of adding them to the policy.",
    ),
]


@app.callback(invoke_without_command=True)
def prompt(
    ctx: typer.Context,
    grant_for: Annotated[
        str, typer.Option("--grant-for", help=f"How long `g` allows a rule for an agent: {DURATION_EXAMPLES}.")
    ] = DEFAULT_GRANT,
    suggest_to: SuggestTo = None,
) -> None:
    """Answer requests held for a person's approval; with no subcommand, ask in this terminal.

    The prompt watches for held requests and asks about each: a (allow once), s (allow it and add
    the rule that lets it through to the policy: shown as a diff first, y applies it as a new
    version after the policy's tests), g (allow the rule for the agent for a while), d (deny),
    q (quit). With --suggest-to FILE, s allows once and writes the rule to FILE for review. The
    subcommands list and answer them from scripts or another terminal.

    \b
    Examples:
      firewall approvals --grant-for 30m             # ask here; g allows the rule for 30 minutes
      firewall approvals list                        # what is waiting, with ids
      firewall approvals approve apr_1f2e3d4c5b6a7988 --for 1h
      firewall approvals approve apr_1f2e3d4c5b6a7988 --suggest   # and add its rule to the policy
      firewall approvals deny apr_1f2e3d4c5b6a7988
      firewall approvals grants                      # standing grants; end one with `revoke ID`
    """
    if ctx.invoked_subcommand is not None:
        return
    from firewall.approvals.prompt import Prompt, prompt_via, terminal_keys

    seconds = _duration_or_exit(grant_for, "--grant-for")
    if not sys.stdin.isatty():
        fail(
            "`firewall approvals` asks in a terminal and stdin is not one; from a script use "
            "`firewall approvals list`, `approve ID` or `deny ID`"
        )
    home = home_or_exit()
    database_or_exit(home).close()  # the schema is current before the prompt starts
    try:
        with terminal_keys(sys.stdin.fileno()) as keys:
            Prompt(
                home.database,
                grant_for=seconds,
                user=getpass.getuser(),
                out=sys.stdout,
                keys=keys,
                suggest_to=suggest_to,
                via=prompt_via(sys.stdin.fileno()),
                paint=colour.prompt_screen if colour.enabled(sys.stdout) else None,
                adopt=lambda db, change: _adopted_lines(db, home, change),
            ).run()
    except (KeyboardInterrupt, EOFError):
        pass
    typer.echo("")


@app.command("list")
def list_requests(
    as_json: Json = False,
    all_states: Annotated[bool, typer.Option("--all", help="The newest 50 requests in any state.")] = False,
) -> None:
    """List the requests waiting for approval, oldest first (with --all: recent ones in any state).

    Example: firewall approvals list --json
    """
    now = time.time()
    with _database() as db:
        store.expire_stale(db, now)
        rows = store.recent(db, 50) if all_states else store.pending(db)
    if as_json:
        typer.echo(render.requests_json(rows, now))
    elif rows:
        typer.echo(render.requests_text(rows, now))
    else:
        typer.echo("no requests are waiting for approval", err=True)


@app.command()
def approve(
    approval_id: Annotated[str, typer.Argument(metavar="ID", help="The request's id, apr_...")],
    grant_for: Annotated[
        str | None,
        typer.Option("--for", help=f"Also allow the request's rule for its agent for this long: {DURATION_EXAMPLES}."),
    ] = None,
    suggest: Annotated[
        bool,
        typer.Option("--suggest", help="Also add the rule that lets it through to the policy (diff shown, y/N)."),
    ] = False,
    suggest_to: SuggestTo = None,
    yes: Annotated[bool, typer.Option("--yes", help="With --suggest: apply the rule without asking.")] = False,
) -> None:
    """Let a held request through; with --for, also let the same rule through for its agent for a while.

    With --suggest, also add the narrowest rule that lets this request through without a person
    (for its agent, just before the rule that held it) to the policy's own files: the change is
    shown as a diff and asked about (y/N; --yes applies it without asking), the policy's tests
    run with it, and it is put in force as a new version whose history names this approval. A rule
    that breaks a test is not added (the request is approved once, exit 1); declining changes
    nothing (exit 1). When the policy in force is not from files you can edit here, or with
    --suggest-to FILE, the rule is appended to a file for review (default: suggested.policy
    beside the policy) and nothing is applied.

    Example: firewall approvals approve apr_1f2e3d4c5b6a7988 --for 1h
    """
    seconds = _duration_or_exit(grant_for, "--for") if grant_for is not None else None
    if suggest and suggest_to is None:
        from firewall.cli.approvals_rule import approve_with_rule

        approve_with_rule(approval_id, seconds, yes, _answer, _approved)
        return
    suggested = (
        _suggestion(approval_id, suggest_to) if suggest or suggest_to else None
    )  # before the answer: a failure changes nothing
    _approved(_answer(approval_id, approve=True, grant_for=seconds), seconds)
    if suggested is not None:
        from firewall.cli.approvals_rule import write_for_review

        write_for_review(suggested)


def _approved(answer: records.Answer, seconds: float | None) -> None:
    row = answer.approval
    typer.echo(f"approved {row.id}: {row.method} {row.url} (agent {row.agent})")
    if answer.grant is not None:
        grant = answer.grant
        typer.echo(
            f"granted rule {grant.rule} to agent {grant.agent} for {render.duration(seconds or 0)} "
            f"({grant.id}; end it early with `firewall approvals revoke {grant.id}`)"
        )


def _adopted_lines(db, home, change) -> list[str]:
    """The prompt's `adopt`: the rule in force as a new version (cli/applying.py), as lines to show."""
    from firewall.approvals.suggest_rule import SuggestError
    from firewall.cli.applying import ApplyRefused, adopt_rule

    try:
        applied = adopt_rule(db, home, change)
    except ApplyRefused as exc:
        raise SuggestError(str(exc)) from None
    assert applied.version is not None
    files = ", ".join(edit.file.name for edit in change.edits)
    return [
        *applied.warnings,
        *(line for line in applied.lines() if line.startswith("ended grant")),
        f"rule added to {files}: {change.rules[0]}"
        + (f" (and {len(change.rules) - 1} more)" if len(change.rules) > 1 else ""),
        f"applied: version {applied.version.version} is now in force (`firewall policy history` names "
        f"{change.approval.id})",
    ]


def _suggestion(approval_id: str, to: Path | None):
    from firewall.approvals.suggest_rule import SuggestError, suggest_rule

    with _database() as db:
        row = store.get(db, approval_id)
        if row is None:
            fail(f"no approval request {approval_id}; list them with `firewall approvals list --all`")
        try:
            return suggest_rule(db, row, getpass.getuser(), to)
        except SuggestError as exc:
            fail(f"{exc}; nothing was approved (approve without --suggest to let it through once)")


@app.command()
def deny(approval_id: Annotated[str, typer.Argument(metavar="ID", help="The request's id, apr_...")]) -> None:
    """Refuse a held request; the agent gets 403 approval_denied.

    Example: firewall approvals deny apr_1f2e3d4c5b6a7988
    """
    row = _answer(approval_id, approve=False, grant_for=None).approval
    typer.echo(f"denied {row.id}: {row.method} {row.url} (agent {row.agent})")


@app.command()
def grants(as_json: Json = False) -> None:
    """List the standing grants still in force.

    A grant whose rule is no longer in the policy in force is reported and ended.

    Example: firewall approvals grants --json
    """
    now = time.time()
    with _database() as db:
        ended = end_orphan_grants(db, in_force(db), now)
        live = grant_rows.live_grants(db, now)
    for grant in ended:
        typer.echo(ended_line(grant), err=as_json)
    if as_json:
        typer.echo(render.grants_json(live, now))
    elif live:
        typer.echo("\n".join(render.grant_line(grant, now) for grant in live))
    else:
        typer.echo("no standing grants are in force", err=True)


@app.command()
def revoke(grant_id: Annotated[str, typer.Argument(metavar="ID", help="The grant's id, grt_...")]) -> None:
    """End a standing grant now: the rule's requests are held for approval again.

    Example: firewall approvals revoke grt_0a1b2c3d4e5f6a7b
    """
    with _database() as db:
        try:
            grant = grant_rows.revoke(db, grant_id, getpass.getuser(), time.time())
        except records.ApprovalError as exc:
            fail(str(exc))
    typer.echo(f"revoked {grant.id}: rule {grant.rule} for agent {grant.agent}")


def _answer(approval_id: str, *, approve: bool, grant_for: float | None) -> records.Answer:
    with _database() as db:
        try:
            return store.answer(
                db,
                approval_id,
                approve=approve,
                by=getpass.getuser(),
                now=time.time(),
                grant_for=grant_for,
                via=CLI,
            )
        except records.ApprovalError as exc:
            fail(str(exc))


def _duration_or_exit(text: str, option: str) -> float:
    seconds = parse_duration(text)
    if not seconds:
        fail(f"{option}: expected a duration like {DURATION_EXAMPLES}, got {text!r}", code=2)
    return seconds


@contextmanager
def _database() -> Iterator[sqlite_utils.Database]:
    db = database_or_exit(home_or_exit())
    try:
        yield db
    finally:
        db.close()
