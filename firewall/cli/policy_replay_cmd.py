"""`firewall policy replay` and `policy apply --plan`: a candidate policy against recorded traffic.

Exit codes a CI job can gate on: 0 no recorded decision would change, 3 some would (EXIT_CHANGES),
1 the candidate's tests fail (or there is nothing to compare with: no policy in force), 2 it does
not compile (or an option is wrong). Requests whose outcome depends on what the audit log does not
record are counted as unknown and do not change the exit code.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from firewall.audit.replay import replay_log
from firewall.audit.times import TimeSpecError, parse_time
from firewall.cli.errors import fail
from firewall.cli.policy_cmd import PathsArg, app, compile_or_exit
from firewall.cli.state import database_or_exit, home_or_exit
from firewall.policy import CompiledPolicy
from firewall.policy.replay import CHANGES, Change, Example, Replay, Side
from firewall.policy.testing import run_tests
from firewall.state import policy_store
from firewall.text import iso_utc

EXIT_CHANGES = 3


@app.command()
def replay(
    paths: PathsArg,
    since: Annotated[
        str, typer.Option(help="Replay the requests recorded since then: 7d, 12h, or an ISO date.")
    ] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Decide the requests of the audit log under a candidate policy and under the policy in force, and count
    what would change, by rule and by agent, with a few example requests each.

    Exit 0 when no decision would change, 3 when some would, 1 when the candidate's tests fail,
    2 when it does not compile. Nothing is applied.

    Example: firewall policy replay policies/ --since 7d
    """
    candidate = compile_or_exit(paths)
    failed = [o for o in run_tests(candidate.policy, candidate.tests) if not o.passed]
    if failed:
        for o in failed:
            typer.echo(f"FAIL  {o.case.source.location}  {o.case.source.text}\n      {o.describe()}", err=True)
        fail(
            f"{len(failed)} expectation(s) of the candidate do not hold; fix the policy or its tests "
            "(`firewall policy test PATH`) before planning it"
        )
    run_plan(candidate.policy, since, as_json)


def run_plan(candidate: CompiledPolicy, since: str, as_json: bool) -> None:
    """Replay the audit log since `since` under `candidate` and the version in force; print; exit 0 or 3."""
    try:
        start = parse_time(since, time.time())
    except TimeSpecError as exc:
        fail(f"--since: {exc}", code=2)
    db = database_or_exit(home_or_exit())
    try:
        version = policy_store.active_version(db)
        if version is None:
            fail(
                "no policy is in force to compare the candidate with; apply one first "
                "(`firewall policy apply PATH`): until then the proxy blocks every request"
            )
        try:
            in_force = version.load()
        except policy_store.PolicyStoreError as exc:
            fail(str(exc))
        result = replay_log(Replay(in_force, candidate), db, start)
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps(_as_json(result, version, start), indent=2))
    else:
        typer.echo(_render(result, version, start))
    if result.changed:
        raise typer.Exit(EXIT_CHANGES)


def _side_text(side: Side) -> str:
    would = f" (report mode: would {side.would.value})" if side.would else ""
    return f"{side.verdict.value}{would} by {side.rule}"


def _example_text(example: Example) -> str:
    agent = f" (agent {example.agent})" if example.agent else ""
    if example.why:  # what either policy decides depends on what was not recorded: no sides to show
        return f"    {example.method} {example.url}{agent}: {example.why}"
    return f"    {example.method} {example.url}{agent}: {_side_text(example.old)} -> {_side_text(example.new)}"


def _render(result: Replay, version: policy_store.PolicyVersion, start: float) -> str:
    lines = [
        f"replayed {result.total} recorded request(s) since {iso_utc(start)} against version {version.version} "
        f"(sha256 {version.sha256[:16]}); candidate sha256 {result.new.sha256[:16]}",
    ]
    if result.skipped:
        lines.append(f"{result.skipped} row(s) the policy did not decide (no agent credentials, probes, ...) skipped")
    lines.append("")
    lines.append(f"  {'change':<20} {'requests':>9}")
    for change in (*CHANGES, Change.UNKNOWN, Change.UNCHANGED):
        lines.append(f"  {change.value:<20} {result.counts[change]:>9}")
    for change in (*CHANGES, Change.UNKNOWN):
        if not result.counts[change]:
            continue
        lines.append("")
        lines.append(f"{change.value}: {result.counts[change]}")
        lines.append("  by rule:  " + _top(result.by_rule.get(change)))
        lines.append("  by agent: " + _top(result.by_agent.get(change)))
        lines.extend(_example_text(e) for e in result.examples.get(change, ()))
    lines.append("")
    if result.changed:
        lines.append(f"{result.changed} decision(s) would change (exit {EXIT_CHANGES})")
    else:
        lines.append("no recorded decision would change")
    return "\n".join(lines)


def _top(counts, limit: int = 5) -> str:
    if not counts:
        return "-"
    shown = ", ".join(f"{name} ({count})" for name, count in counts.most_common(limit))
    more = len(counts) - limit
    return shown + (f", and {more} more" if more > 0 else "")


def _side_json(side: Side) -> dict:
    return {"decision": side.verdict.value, "would": side.would.value if side.would else None, "rule": side.rule}


def _as_json(result: Replay, version: policy_store.PolicyVersion, start: float) -> dict:
    changes = (*CHANGES, Change.UNKNOWN)
    return {
        "since": iso_utc(start),
        "in_force": {"version": version.version, "sha256": version.sha256},
        "candidate_sha256": result.new.sha256,
        "requests": result.total,
        "skipped": result.skipped,
        "changed": result.changed,
        "unknown": result.counts[Change.UNKNOWN],
        "counts": {change.value: result.counts[change] for change in Change},
        "by_rule": {c.value: dict(result.by_rule[c].most_common()) for c in changes if c in result.by_rule},
        "by_agent": {c.value: dict(result.by_agent[c].most_common()) for c in changes if c in result.by_agent},
        "examples": {
            c.value: [
                {
                    "method": e.method,
                    "url": e.url,
                    "agent": e.agent,
                    "old": None if e.why else _side_json(e.old),  # unknown: no decision to show
                    "new": None if e.why else _side_json(e.new),
                    "unknown": e.why,
                }
                for e in result.examples[c]
            ]
            for c in changes
            if c in result.examples
        },
    }
