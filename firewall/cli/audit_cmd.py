"""`firewall audit`: list, tail, count, prune, checkpoint and verify the audit log."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import sqlite_utils
import typer

from firewall.audit import checkpoints, render
from firewall.audit.chain import head as chain_head
from firewall.audit.chain import verify as verify_chain
from firewall.audit.decisions import known_decisions
from firewall.audit.prune import PruneError
from firewall.audit.prune import prune as prune_rows
from firewall.audit.query import GROUPS, AuditFilter, Row, between, last_seq, newest
from firewall.audit.query import stats as count_groups
from firewall.audit.times import ACCEPTED, TimeSpecError, parse_time
from firewall.cli import colour
from firewall.cli.errors import fail
from firewall.state.db import open_database
from firewall.state.failures import describe_database_error
from firewall.state.home import Home, StateError, open_home
from firewall.text import iso_utc

POLL_INTERVAL = 0.2  # seconds between `tail` looks for new rows

app = typer.Typer(no_args_is_help=False, add_completion=False)

Since = Annotated[str | None, typer.Option("--since", help=f"Rows at or after this: {ACCEPTED}.")]
Until = Annotated[str | None, typer.Option("--until", help="Rows before this; same forms as --since.")]
Agent = Annotated[str | None, typer.Option("--agent", help="Only this agent.")]
Host = Annotated[str | None, typer.Option("--host", help="Only this destination host (exact).")]
Decision = Annotated[str | None, typer.Option("--decision", help="Only this decision, e.g. block.")]
Rule = Annotated[str | None, typer.Option("--rule", help="Only rows decided by this rule, FILE:LINE.")]
Json = Annotated[bool, typer.Option("--json", help="Output JSON.")]


@app.callback(invoke_without_command=True)
def list_rows(
    ctx: typer.Context,
    since: Since = None,
    until: Until = None,
    agent: Agent = None,
    host: Host = None,
    decision: Decision = None,
    rule: Rule = None,
    limit: Annotated[
        int,
        typer.Option("--limit", min=0, help="Show the newest N rows; 0 shows all. --json/--csv take all unless given."),
    ] = 50,
    as_json: Json = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Output CSV with a header row.")] = False,
) -> None:
    """List audit rows, newest last; subcommands tail, count, prune, checkpoint and verify them.

    Example: firewall audit --since 1h --agent coder --decision block
    """
    if ctx.invoked_subcommand is not None:
        return
    if as_json and as_csv:
        fail("--json and --csv: choose one output format", code=2)
    filters = _filter(since, until, agent, host, decision, rule)
    export = as_json or as_csv
    # An export takes every matching row unless --limit is given; the table shows the newest 50.
    cap = None if limit == 0 or (export and not _given(ctx, "limit")) else limit
    with _database() as db:
        _check_decision(db, decision)
        rows = with_answers(db, newest(db, filters, cap))
        more = count_rows(db, filters) - len(rows) if cap is not None and len(rows) == cap else 0
    if as_json:
        typer.echo(render.json_array(rows))
    elif as_csv:
        typer.echo(render.csv_text(rows), nl=False)
    elif rows:
        typer.echo("\n".join(_coloured(render.table(rows, _table_width()))))
    else:
        typer.echo("no audit rows match", err=True)
    if more:
        typer.echo(f"{more} more rows match; show them with --limit 0, or narrow with --since", err=True)


@app.command()
def tail(
    since: Since = None,
    until: Until = None,
    agent: Agent = None,
    host: Host = None,
    decision: Decision = None,
    rule: Rule = None,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Exit after N rows.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Follow new audit rows as they are written, until Ctrl-C or --count rows.

    Example: firewall audit tail --decision block
    """
    filters = _filter(since, until, agent, host, decision, rule)
    shown = 0
    try:
        with _database() as db:
            _check_decision(db, decision)
            after = last_seq(db)
            columns = render.TailLayout(_table_width())
            header = columns.header()
            paint = _decision_painter(header)
            if not as_json:
                typer.echo(header)
            while count is None or shown < count:
                upto = last_seq(db)
                rows = between(db, filters, after, upto)
                if count is not None:
                    rows = rows[: count - shown]
                for row in with_answers(db, rows):
                    typer.echo(render.json_line(row) if as_json else paint(columns.line(row)))
                shown += len(rows)
                if upto == after:
                    time.sleep(POLL_INTERVAL)
                after = upto
    except KeyboardInterrupt:
        pass  # Ctrl-C is how tail is meant to end


@app.command()
def stats(
    since: Since = None,
    until: Until = None,
    agent: Agent = None,
    host: Host = None,
    decision: Decision = None,
    rule: Rule = None,
    by: Annotated[str, typer.Option("--by", help=f"Group by: {', '.join(GROUPS)}.")] = "decision",
    as_json: Json = False,
) -> None:
    """Count decisions, overall or per agent, host or rule.

    Example: firewall audit stats --since 1d --by agent
    """
    if by not in GROUPS:
        fail(f"--by: expected one of {', '.join(GROUPS)}, got {by!r}", code=2)
    filters = _filter(since, until, agent, host, decision, rule)
    with _database() as db:
        _check_decision(db, decision)
        groups = count_groups(db, filters, by)
    if as_json:
        typer.echo(render.stats_json(groups, by))
    elif groups:
        typer.echo("\n".join(render.stats_table(groups, by)))
    else:
        typer.echo("no audit rows match", err=True)


@app.command()
def prune(
    older_than: Annotated[str, typer.Option("--older-than", help=f"Delete rows before this: {ACCEPTED}.")],
) -> None:
    """Delete old audit rows; the rest of the chain stays verifiable.

    Example: firewall audit prune --older-than 30d
    """
    now = time.time()
    cutoff = _time("--older-than", older_than, now)
    home = _home()
    key = _signing_key(home)
    with _database() as db:
        try:
            result = prune_rows(db, cutoff, now)
        except PruneError as exc:
            fail(str(exc))
        if result.anchor is not None:  # a prune the checkpoints vouch for; an unsigned one is forged
            _append(home, checkpoints.sign(key, checkpoints.PRUNE, result.anchor, now))
            _append(home, checkpoints.sign(key, checkpoints.HEAD, chain_head(db.conn), now))
    typer.echo(f"deleted {result.deleted} rows older than {older_than} ({iso_utc(cutoff)})")


@app.command()
def checkpoint(
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key", help="Also write the signing key's public half (PEM) here, to verify copies elsewhere."
        ),
    ] = None,
) -> None:
    """Sign the audit chain's head and append it to the checkpoint file.

    Keep a copy of the file (and the public key) elsewhere: `audit verify --checkpoint COPY`
    then shows rows deleted, rewritten or pruned by a forged prune since.

    Example: firewall audit checkpoint --public-key audit-key.pub
    """
    home = _home()
    key = _signing_key(home)
    with _database() as db:
        written = _append(home, checkpoints.sign(key, checkpoints.HEAD, chain_head(db.conn), time.time()))
    if public_key is not None:
        try:
            public_key.write_bytes(checkpoints.public_pem(key))
        except OSError as exc:
            fail(f"{public_key}: {exc.strerror}")
    typer.echo(f"checkpoint: row {written.seq}, hash {written.hash}, key {written.key_id}, in {home.checkpoints}")


@app.command()
def verify(
    checkpoint_file: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="A checkpoint file (default: the state folder's, when there is one)."),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key", help="The public key the checkpoints are signed with (default: the state folder's)."
        ),
    ] = None,
) -> None:
    """Check the hash chain, the signed checkpoints and the database file itself (SQLite's integrity
    check): exit 0 if intact, 1 naming what was tampered or damaged.

    Example: firewall audit verify --checkpoint ~/backup/audit-checkpoints.jsonl
    """
    home = _home()
    source = checkpoint_file or (home.checkpoints if home.checkpoints.exists() else None)
    with _database() as db:
        damage = _integrity_problems(db)
        report = verify_chain(db)
        checked = None
        if source is not None:
            try:
                public = (
                    checkpoints.public_key_from(public_key)
                    if public_key
                    else checkpoints.load_or_create_key(_existing(home.audit_key)).public_key()
                )
                checked = checkpoints.check(db.conn, checkpoints.read(source), public, source)
            except (checkpoints.CheckpointError, StateError) as exc:
                fail(str(exc))
    typer.echo(report.describe())
    for problem in damage:
        typer.echo(f"database: {problem}")
    if damage:
        typer.echo(
            f"the database file is damaged: recover it with `sqlite3 DB .recover | sqlite3 DB.recovered` "
            f"(DB: {home.database}) and verify the recovered copy"
        )
    if checked is not None:
        for problem in checked.problems:
            typer.echo(f"checkpoint: {problem}")
        if checked.intact:
            typer.echo(f"checkpoints: {checked.checked} signed checkpoint(s) in {source} agree with the log")
    if damage or not report.intact or (checked is not None and not checked.intact):
        raise typer.Exit(1)


def with_answers(db: sqlite_utils.Database, rows: list[Row]) -> list[Row]:
    """Each row with `answered_by`: who answered its approval (`alice via cli`) or the grant that
    passed it (`grant grt_… by alice`), from the approvals records; None when nobody did."""
    from firewall.approvals.who import answered_by

    found = answered_by(db, (row.get("approval_id") for row in rows))
    return [{**row, "answered_by": found.get(str(row.get("approval_id")))} for row in rows]


def _integrity_problems(db: sqlite_utils.Database, most: int = 10) -> list[str]:
    """What SQLite's own check finds wrong anywhere in the file (the chain covers only the audit rows)."""
    try:
        found = [text for (text,) in db.execute(f"PRAGMA integrity_check({most})")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [] if found == ["ok"] else found


def _home() -> Home:
    try:
        return open_home()
    except StateError as exc:
        fail(str(exc))


def _existing(path: Path) -> Path:
    if not path.exists():
        fail(f"{path}: no signing key in the state folder; pass the public key with --public-key FILE")
    return path


def _signing_key(home: Home):
    try:
        return checkpoints.load_or_create_key(home.audit_key)
    except (checkpoints.CheckpointError, StateError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{home.audit_key}: {exc.strerror}")


def _append(home: Home, signed: checkpoints.Checkpoint) -> checkpoints.Checkpoint:
    try:
        checkpoints.append(home.checkpoints, signed)
    except OSError as exc:
        fail(f"{home.checkpoints}: cannot write the checkpoint: {exc.strerror}")
    return signed


def _coloured(lines: list[str]) -> list[str]:
    """The table's decisions coloured on a terminal that takes colour; piped, every byte as it was."""
    paint = _decision_painter(lines[0])
    return [lines[0], *(paint(line) for line in lines[1:])]


def _decision_painter(header: str) -> Callable[[str], str]:
    if not colour.enabled(sys.stdout):
        return lambda line: line
    start = colour.decision_column(header)
    return lambda line: colour.decisions(line, start)


def _table_width() -> int | None:
    """The terminal's width when the table goes to one (or COLUMNS says it), else None: a piped
    table keeps every character for the programs that read it."""
    if not (sys.stdout.isatty() or os.environ.get("COLUMNS")):
        return None
    return shutil.get_terminal_size().columns


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the option was on the command line (or in the environment), not left at its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def count_rows(db: sqlite_utils.Database, filters: AuditFilter) -> int:
    condition, params = filters.sql()
    return db.execute(f"SELECT count(*) FROM audit WHERE {condition}", params).fetchone()[0]


def _check_decision(db: sqlite_utils.Database, decision: str | None) -> None:
    if decision is None:
        return
    known = known_decisions(db)
    if decision not in known:
        fail(f"--decision: {decision!r} is not a decision; use one of {', '.join(known)}", code=2)


def _filter(
    since: str | None, until: str | None, agent: str | None, host: str | None, decision: str | None, rule: str | None
) -> AuditFilter:
    now = time.time()
    start = None if since is None else _time("--since", since, now)
    end = None if until is None else _time("--until", until, now)
    if start is not None and end is not None and start >= end:
        fail(f"--since {since} is not before --until {until}: no row can match; swap them", code=2)
    return AuditFilter(since=start, until=end, agent=agent, host=host, decision=decision, rule=rule)


def _time(option: str, text: str, now: float) -> float:
    try:
        return parse_time(text, now)
    except TimeSpecError as exc:
        fail(f"{option}: {exc}", code=2)


@contextmanager
def _database() -> Iterator[sqlite_utils.Database]:
    """The state folder's database; a state or SQLite problem ends the command with its message."""
    try:
        path = open_home().database
    except StateError as exc:
        fail(str(exc))
    try:
        db = open_database(path)
    except sqlite3.Error as exc:
        fail(describe_database_error(exc, path))
    try:
        yield db
    except sqlite3.Error as exc:
        fail(describe_database_error(exc, path))
    finally:
        db.conn.close()
