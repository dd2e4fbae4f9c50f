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
        help="Where a suggested rule is written (appended); default: suggested.policy beside the policy in force.",
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

    The prompt watches for held requests and asks about each: a (allow once), s (allow once and
    write the rule that would let it through to a file, for review), g (allow the rule for the
    agent for a while), d (deny), q (quit). The subcommands list and answer them from scripts or
    another terminal.

    \b
    Examples:
      firewall approvals --grant-for 30m             # ask here; g allows the rule for 30 minutes
      firewall approvals list                        # what is waiting, with ids
      firewall approvals approve apr_1f2e3d4c5b6a7988 --for 1h
      firewall approvals approve apr_1f2e3d4c5b6a7988 --suggest   # and propose a rule, for review
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
        bool, typer.Option("--suggest", help="Also write the rule that would let it through next time, for review.")
    ] = False,
    suggest_to: SuggestTo = None,
) -> None:
    """Let a held request through; with --for, also let the same rule through for its agent for a while.

    With --suggest, also propose the narrowest rule that would let this request through without a
    person (for its agent, just before the rule that held it), checked against the policy's tests,
    and append it to --suggest-to FILE (default: suggested.policy beside the policy in force).
    Nothing is applied: review the file and put it in force with `firewall policy apply`.

    Example: firewall approvals approve apr_1f2e3d4c5b6a7988 --for 1h
    """
    seconds = _duration_or_exit(grant_for, "--for") if grant_for is not None else None
    suggested = (
        _suggestion(approval_id, suggest_to) if suggest else None
    )  # before the answer: a failure changes nothing
    answer = _answer(approval_id, approve=True, grant_for=seconds)
    row = answer.approval
    typer.echo(f"approved {row.id}: {row.method} {row.url} (agent {row.agent})")
    if answer.grant is not None:
        grant = answer.grant
        typer.echo(
            f"granted rule {grant.rule} to agent {grant.agent} for {render.duration(seconds)} "
            f"({grant.id}; end it early with `firewall approvals revoke {grant.id}`)"
        )
    if suggested is not None:
        _write_suggestion(suggested)


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


def _write_suggestion(suggested) -> None:
    from firewall.approvals.suggest_rule import SuggestError, write

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
