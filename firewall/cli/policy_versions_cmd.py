"""`firewall policy apply | show | history | rollback`: the policy in force and its history."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from firewall.cli import colour
from firewall.cli.applying import ApplyRefused, loaded_in_force, print_applied, put_in_force
from firewall.cli.errors import fail, warn
from firewall.cli.grant_sync import end_orphan_grants, ended_line
from firewall.cli.policy_cmd import PathsArg, app, compile_or_exit
from firewall.cli.state import database_or_exit, home_or_exit
from firewall.policy.diff import diff_policies
from firewall.policy.loader import policy_paths
from firewall.policy.testing import ExpectResult, run_tests
from firewall.state import policy_store


@app.command()
def apply(
    paths: PathsArg,
    note: Annotated[str, typer.Option(help="Why this change, kept in the history.")] = "",
    skip_tests: Annotated[
        bool, typer.Option("--skip-tests", help="Apply even when some of the policy's tests fail (recorded).")
    ] = False,
    plan: Annotated[
        bool,
        typer.Option(
            "--plan", help="Apply nothing: replay the audit log's last 7 days and print what would change (exit 3)."
        ),
    ] = False,
) -> None:
    """Compile the policy, run its tests and make it the one in force, in every running proxy within a second.

    Refuses a policy that does not compile (exit 2), one whose tests do not all hold (exit 1,
    listing the failures; --skip-tests applies it anyway and its history says so) or whose
    credentials name vault entries that do not exist (exit 1); the policy in force stays in force.

    With --plan nothing is applied: the requests of the last 7 days are decided under the policy and
    the one in force, as `firewall policy replay` does (exit 0 no change, 3 some decisions change).

    Example: firewall policy apply policies/openai.policy
    """
    result = compile_or_exit(paths)
    tests = _tests_or_exit(run_tests(result.policy, result.tests), skip_tests)
    if plan:
        from firewall.cli.policy_replay_cmd import run_plan

        run_plan(result.policy, "7d", as_json=False)
        return
    home = home_or_exit()
    found = policy_paths(paths)
    sources = [(str(p), p.read_text(encoding="utf-8")) for p in found]
    db = database_or_exit(home)
    try:
        applied = put_in_force(
            db, home, result.policy, sources, origins=[os.path.abspath(p) for p in found], note=note, tests=tests
        )
    except ApplyRefused as exc:
        fail(str(exc))
    finally:
        db.close()
    print_applied(applied)


def _tests_or_exit(outcomes: list[ExpectResult], skip: bool) -> str:
    """The tests' outcome as the history keeps it; exit 1 listing the failures unless `skip`."""
    failed = [o for o in outcomes if not o.passed]
    if failed and not skip:
        for o in failed:
            typer.echo(f"FAIL  {o.case.source.location}  {o.case.source.text}\n      {o.describe()}", err=True)
        fail(
            f"{len(failed)} of {len(outcomes)} expectation(s) do not hold; the policy was not applied; "
            "fix the policy or its tests (`firewall policy test PATH`), or apply anyway with --skip-tests"
        )
    if not outcomes:
        return "none"
    if skip:
        return f"skipped (--skip-tests): {len(failed)} of {len(outcomes)} failing"
    return f"{len(outcomes)} passed"


@app.command()
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    version_number: Annotated[
        int | None, typer.Option("--version", metavar="N", help="Show version N from the history instead.")
    ] = None,
    diff_from: Annotated[
        int | None,
        typer.Option("--diff", metavar="N", help="Show what changed from version N to M (default: the one in force)."),
    ] = None,
    diff_to: Annotated[int | None, typer.Argument(metavar="M", help="With --diff: the later version.")] = None,
) -> None:
    """Show the policy in force: version, hash, who applied it and when, and its source.

    --version N shows an earlier version from `firewall policy history`; --diff N [M] shows what
    changed from version N to version M (default: the version in force), rules first, then the source.

    Example: firewall policy show --diff 3
    """
    if diff_to is not None and diff_from is None:
        fail(f"version {diff_to} given without --diff; to see it: `firewall policy show --version {diff_to}`")
    if diff_from is not None and version_number is not None:
        fail("--version and --diff do not go together; use `--diff N M` to compare two versions")
    db = database_or_exit(home_or_exit())
    try:
        active = policy_store.active_version(db)
        if active is None:
            fail("no policy has been applied yet; apply one with `firewall policy apply PATH`")
        version = _stored_version(db, version_number) if version_number is not None else active
        if diff_from is not None:
            older = _stored_version(db, diff_from)
            newer = _stored_version(db, diff_to) if diff_to is not None else active
    finally:
        db.close()
    if diff_from is not None:
        _show_diff(older, newer, as_json)
        return
    if as_json:
        typer.echo(
            json.dumps({**version.summary(), "sources": [{"path": p, "text": t} for p, t in version.sources]}, indent=2)
        )
        return
    typer.echo(_summary_line(version))
    for path, text in version.sources:
        typer.echo(f"\n# --- {path}\n{text.rstrip()}")


def _stored_version(db, number: int) -> policy_store.PolicyVersion:
    found = policy_store.get_version(db, number)
    if found is None:
        fail(f"no policy version {number}; see `firewall policy history` for the versions there are")
    return found


def _show_diff(older: policy_store.PolicyVersion, newer: policy_store.PolicyVersion, as_json: bool) -> None:
    """What changed from `older` to `newer`: the rule changes as `policy apply` prints them, then
    a unified diff of each source file (by path)."""
    try:
        changes = diff_policies(older.load(), newer.load())
    except policy_store.PolicyStoreError as exc:
        fail(str(exc))
    before, after = dict(older.sources), dict(newer.sources)
    paths = list(before) + [p for p in after if p not in before]
    if as_json:
        patch = []
        for path in paths:
            patch += _unified(before.get(path), after.get(path), path, older.version, newer.version)
        typer.echo(
            json.dumps(
                {"from": older.summary(), "to": newer.summary(), "changes": changes, "diff": "\n".join(patch)},
                indent=2,
            )
        )
        return
    typer.echo(f"from {_summary_line(older)}\n  to {_summary_line(newer)}\n")
    for line in changes:
        typer.echo(line)
    for path in paths:
        lines = _unified(before.get(path), after.get(path), path, older.version, newer.version)
        if lines:
            typer.echo("")
        for line in lines:
            colour.echo([(line, colour.diff_style(line))])


def _unified(before: str | None, after: str | None, path: str, old: int, new: int) -> list[str]:
    """The unified diff of one source file between two versions; a file only one of them has
    shows as wholly added or removed."""
    return list(
        difflib.unified_diff(
            (before or "").splitlines(),
            (after or "").splitlines(),
            f"{path} (version {old})" if before is not None else "/dev/null",
            f"{path} (version {new})" if after is not None else "/dev/null",
            lineterm="",
        )
    )


@app.command("history")
def history_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List every policy version ever applied, oldest first; the one in force is marked.

    Example: firewall policy history
    """
    db = database_or_exit(home_or_exit())
    try:
        versions = policy_store.history(db)
        active = policy_store.active_marker(db)
    finally:
        db.close()
    if as_json:
        typer.echo(
            json.dumps([{**v.summary(), "active": bool(active and active[0] == v.version)} for v in versions], indent=2)
        )
        return
    if not versions:
        typer.echo("no policy has been applied yet")
    for v in versions:
        marker = "*" if active and active[0] == v.version else " "
        typer.echo(f"{marker} {_summary_line(v)}")


@app.command("rollback")
def rollback_command(
    version: Annotated[int | None, typer.Argument(help="Version to bring back (default: the previous one).")] = None,
) -> None:
    """Put an earlier policy version back in force (recorded as a new version).

    Rolling back to the content already in force says so and changes nothing.

    Example: firewall policy rollback 3
    """
    db = database_or_exit(home_or_exit())
    try:
        current = policy_store.active_version(db)
        restored = policy_store.rollback(db, version)
        ended = end_orphan_grants(db, restored.load(), time.time())
    except policy_store.AlreadyInForce as exc:
        typer.echo(f"unchanged: {exc}")
        return
    except policy_store.PolicyStoreError as exc:
        fail(str(exc))
    finally:
        db.close()
    for line in diff_policies(_loaded_or_warn(current), restored.load()):
        typer.echo(line)
    for grant in ended:
        typer.echo(ended_line(grant))
    typer.echo(f"rolled back: version {restored.version} ({restored.note}) is now in force")


def _loaded_or_warn(version: policy_store.PolicyVersion | None):
    """The compiled policy of the version in force, to diff against (applying.loaded_in_force), its
    warning printed."""
    warnings: list[str] = []
    policy = loaded_in_force(version, warnings)
    for line in warnings:
        warn(line)
    return policy


def _summary_line(v: policy_store.PolicyVersion) -> str:
    when = dt.datetime.fromtimestamp(v.applied_at).strftime("%Y-%m-%d %H:%M:%S")
    files = ", ".join(Path(p).name for p, _ in v.sources)
    note = f"  ({v.note})" if v.note else ""
    tests = f"  tests: {v.tests}" if v.tests else ""
    return f"version {v.version}  {v.sha256[:16]}  {when}  by {v.applied_by}  [{files}]{note}{tests}"
