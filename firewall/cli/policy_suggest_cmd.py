"""`firewall policy suggest`: rules proposed from the audit log, checked before anyone reads them.

The proposal (firewall/policy/suggest.py) is compiled into the policy it was made against, the
policy's tests are run on the result, and the audit log is replayed under it, so the summary says
whether it compiles, whether the tests hold and how many recorded decisions it would change.
Nothing is applied: that stays `firewall policy apply`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from firewall.audit.replay import replay_log
from firewall.audit.suggest import observed_rows
from firewall.audit.times import TimeSpecError, parse_time
from firewall.cli.errors import fail
from firewall.cli.policy_cmd import app
from firewall.cli.state import database_or_exit, home_or_exit
from firewall.policy import PolicyError
from firewall.policy.loader import policy_paths, rule_file_names
from firewall.policy.replay import CHANGES, Replay
from firewall.policy.suggest import SKIP_WHY, Options, Proposal, propose
from firewall.policy.suggest_edit import Source, candidate, compile_sources, fragment, named_sources, source_diff
from firewall.policy.testing import run_tests
from firewall.state import policy_store
from firewall.text import iso_utc


@app.command()
def suggest(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Policy files or folders to suggest against (default: the policy in force)."),
    ] = None,
    since: Annotated[
        str, typer.Option(help="Learn from the requests recorded since then: 7d, 12h, or an ISO date.")
    ] = "7d",
    agent: Annotated[
        list[str] | None,
        typer.Option("--agent", help="Only this agent's requests, and rules that say `when agent ...` (repeatable)."),
    ] = None,
    min_count: Annotated[
        int, typer.Option(min=1, help="Requests refused by the default a rule needs (approved ones: one).")
    ] = 2,
    whole_host: Annotated[
        bool, typer.Option("--whole-host", help="One rule per method for any path of a host, instead of per path.")
    ] = False,
    diff: Annotated[
        bool, typer.Option("--diff", help="Print the change to the policy's files as a unified diff.")
    ] = False,
    write: Annotated[
        Path | None, typer.Option("--write", metavar="FILE", help="Write the rules (or the diff) to FILE.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Propose the smallest rules that would let through what agents did and a person approved, or what
    the default refused again and again, grouped by host block, with counts and example requests.

    Never proposes a rule for a request a person denied, or the exfiltration guard or a safety check
    refused; never widens a path past what was seen (a `*` segment only where several paths share the
    rest). The rules are compiled into the policy, its tests run and the audit log replayed: the
    summary says how many recorded decisions they would change. Nothing is applied.

    Exit 0, or 1 when the policy's tests fail with the rules added.

    Example: firewall policy suggest --since 7d --agent ci --write suggested.policy
    """
    try:
        start = parse_time(since, time.time())
    except TimeSpecError as exc:
        fail(f"--since: {exc}", code=2)
    options = Options(min_count=min_count, whole_host=whole_host, agents=tuple(agent or ()))
    db = database_or_exit(home_or_exit())
    try:
        base_sources, against = _base(db, paths)
        base = _compiled(base_sources, "the policy")
        proposal = propose(base.policy, observed_rows(db, start), options)
        sources = candidate(base_sources, proposal)
        with_rules = _compiled(sources, "the policy with the suggested rules (a bug: please report it)")
        replayed = replay_log(Replay(base.policy, with_rules.policy), db, start)
    finally:
        db.close()
    failed = [o for o in run_tests(with_rules.policy, with_rules.tests) if not o.passed]
    header = (f"suggested by `firewall policy suggest` from the audit log since {iso_utc(start)}, against {against}",)
    text = source_diff(base_sources, sources) if diff else fragment(proposal, header)
    summary = _summary(proposal, len(with_rules.tests), failed, replayed)
    if write is not None:
        try:
            write.write_text(text, encoding="utf-8")
        except OSError as exc:
            fail(f"--write {write}: {exc.strerror}; choose a file in a folder you can write to")
    if as_json:
        typer.echo(
            json.dumps(_as_json(proposal, start, against, text, len(with_rules.tests), failed, replayed), indent=2)
        )
    elif write is not None:
        typer.echo("\n".join([*summary, f"wrote {write}"]))
    else:
        typer.echo(text, nl=False)
        typer.echo("\n".join(summary), err=True)
    if failed:
        raise typer.Exit(1)


def _base(db, paths: list[Path] | None) -> tuple[list[Source], str]:
    """The policy's files, named as its rules name them, and what they are."""
    if paths:
        try:
            found = policy_paths(list(paths))
            names = rule_file_names(list(paths), found)
            files = [Source(names[str(p)], p.read_text(encoding="utf-8")) for p in found]
        except PolicyError as exc:
            fail(exc.render(), code=2)
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read the policy: {exc}", code=2)
        return files, " ".join(str(p) for p in paths)
    version = policy_store.active_version(db)
    if version is None:
        fail("no policy is in force to suggest against; apply one (`firewall policy apply PATH`) or name its files")
    try:
        compiled = version.load()
    except policy_store.PolicyStoreError as exc:
        fail(str(exc))
    names = {source.sha256: source.path for source in compiled.sources}
    return named_sources(list(version.sources), names), f"version {version.version} (in force)"


def _compiled(sources: list[Source], what: str):
    try:
        return compile_sources(sources)
    except PolicyError as exc:
        fail(f"{what} does not compile:\n{exc.render()}", code=2)


def _changes(replayed: Replay) -> str:
    counts = [f"{c.value} {replayed.counts[c]}" for c in CHANGES if replayed.counts[c]]
    return f" ({', '.join(counts)})" if counts else ""


def _summary(proposal: Proposal, tests: int, failed: list, replayed: Replay) -> list[str]:
    lines = [
        f"read {proposal.read} request(s) that were approved, refused by the default or must stay refused: "
        f"{len(proposal.suggestions)} rule(s) for {proposal.covered} of them"
    ]
    for key, count in sorted(proposal.skipped.items()):
        lines.append(f"  left out {count}: {SKIP_WHY[key]}")
    lines.append(
        f"with these rules the policy compiles; its tests: {tests - len(failed)} hold, {len(failed)} do not; "
        f"{replayed.changed} of {replayed.total} recorded decision(s) would change{_changes(replayed)}"
    )
    for o in failed:
        lines.append(f"  FAIL  {o.case.source.location}  {o.case.source.text}: {o.describe()}")
    return lines


def _as_json(proposal: Proposal, start: float, against: str, text: str, tests: int, failed: list, replayed: Replay):
    return {
        "since": iso_utc(start),
        "against": against,
        "read": proposal.read,
        "rules": [
            {
                "rule": s.text,
                "host_block": list(s.placement.patterns),
                "block": s.placement.block.location if s.placement.block else None,
                "where": s.placement.where.value,
                "before": s.placement.before.location if s.placement.before else None,
                "methods": list(s.methods),
                "path": s.glob,
                "condition": s.condition,
                "requests": s.requests,
                "approved": s.approved,
                "agents": list(s.agents),
                "examples": list(s.examples),
            }
            for s in proposal.suggestions
        ],
        "skipped": proposal.skipped,
        "text": text,
        "check": {
            "compiles": True,
            "tests": {
                "hold": tests - len(failed),
                "fail": [f"{o.case.source.location} {o.case.source.text}" for o in failed],
            },
            "replay": {
                "requests": replayed.total,
                "changed": replayed.changed,
                "counts": {c.value: replayed.counts[c] for c in CHANGES},
            },
        },
    }
