"""`firewall policy check | test | explain | fmt`: working with policy files."""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from firewall.cli import colour, fit_lines
from firewall.cli.errors import fail
from firewall.policy import CompileResult, Decision, PolicyError, Request, decide, load_policy
from firewall.policy.compile_tests import ExpectCase
from firewall.policy.formatter import format_policy
from firewall.policy.loader import policy_paths, read_policy_file
from firewall.policy.testing import ExpectResult, run_tests
from firewall.text import terminal_width

app = typer.Typer(help="Check, test, explain, format and apply policies.", no_args_is_help=True)

EXIT_INVALID_POLICY = 2

PathsArg = Annotated[list[Path], typer.Argument(help="Policy files, or folders of *.policy files.")]


def compile_or_exit(paths: list[Path]) -> CompileResult:
    """Compile, printing warnings; on errors print them all and exit 2."""
    try:
        result = load_policy(paths)
    except PolicyError as exc:
        typer.echo(exc.render(), err=True)
        count = len(exc.diagnostics)
        typer.echo(f"{count} error{'s' if count != 1 else ''}; the policy was not compiled", err=True)
        raise typer.Exit(EXIT_INVALID_POLICY) from None
    for warning in result.warnings:
        typer.echo(warning.render(), err=True)
    return result


@app.command()
def check(paths: PathsArg) -> None:
    """Compile policy files and report every error and warning.

    Exit 0 when the policy is valid (warnings go to stderr), 2 when it is not.

    Example: firewall policy check policies/
    """
    result = compile_or_exit(paths)
    policy = result.policy
    rules = sum(len(b.rules) for b in policy.blocks)
    typer.echo(
        f"ok: {len(policy.sources)} file(s), {len(policy.blocks)} host block(s), {rules} rule(s), "
        f"{len(result.tests)} expectation(s); sha256 {policy.sha256[:16]}"
    )


@app.command("test")
def test_command(
    paths: PathsArg,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Name each test block, with its file:line and PASS or FAIL.")
    ] = False,
    run: Annotated[
        str | None,
        typer.Option(
            "--run", metavar="PATTERN", help="Run only the tests whose name, or expect lines whose text, match PATTERN."
        ),
    ] = None,
) -> None:
    """Run every `test` block of the policy and print each expectation's result.

    Exit 1 naming the file:line of each failing expect, 2 if the policy does not compile.
    --run takes a regular expression (as `opa test --run`): a test whose name matches runs whole,
    otherwise only its expect lines that match; nothing matching is an error.

    Example: firewall policy test policies/openai.policy -v --run images
    """
    result = compile_or_exit(paths)
    cases = result.tests if run is None else selected_cases(result.tests, run)
    outcomes = run_tests(result.policy, cases)
    width = terminal_width(sys.stdout)  # None when piped: every character kept
    shown_test = None
    for outcome in outcomes:
        case = outcome.case
        if verbose and case.test_name != shown_test:
            shown_test = case.test_name
            _echo_test_header(case.test_name, [o for o in outcomes if o.case.test_name == case.test_name], width)
        indent = "  " if verbose else ""
        status = "PASS" if outcome.passed else "FAIL"
        location, text = fit_lines.fit(len(indent) + 8, case.source.location, case.source.text, width)
        colour.echo(
            [(indent, None), (status, colour.PASS if outcome.passed else colour.FAIL)]
            + [(f"  {location}  {text}", None)]
        )
        if not outcome.passed:
            typer.echo("\n".join(fit_lines.wrapped(f"{indent}      {outcome.describe()}", width, indent + "        ")))
    failed = [o for o in outcomes if not o.passed]
    if not outcomes:
        typer.echo("no test blocks found", err=True)
    skipped = len(result.tests) - len(cases)
    filtered = f" ({skipped} not run: --run {run})" if skipped else ""
    typer.echo(f"{len(outcomes) - len(failed)} expectation(s) hold, {len(failed)} do not{filtered}")
    if failed:
        raise typer.Exit(1)


def selected_cases(cases: tuple[ExpectCase, ...], pattern: str) -> tuple[ExpectCase, ...]:
    """The expectations `--run PATTERN` picks: every one of a test whose name matches, and those
    whose own text matches; exit 1 when none does, so a mistyped filter never passes silently."""
    try:
        wanted = re.compile(pattern)
    except re.error as exc:
        fail(f"--run {pattern!r} is not a regular expression ({exc}); e.g. --run 'images|files'")
    chosen = tuple(c for c in cases if wanted.search(c.test_name) or wanted.search(c.source.text))
    if cases and not chosen:
        names = sorted({c.test_name for c in cases})
        fail(f"--run {pattern!r} matches no test name or expect line; the tests are: {', '.join(map(repr, names))}")
    return chosen


def _echo_test_header(name: str, outcomes: list[ExpectResult], width: int | None) -> None:
    """`test "name"  (file:line)  PASS`: the block's verdict is FAIL when any of its expects fails."""
    passed = all(o.passed for o in outcomes)
    where = outcomes[0].case.test_location if outcomes else ""
    where, title = fit_lines.fit(len("  ()  PASS"), where, f"test {json.dumps(name)}", width)
    colour.echo(
        [
            (f"{title}  ({where})  ", None),
            ("PASS" if passed else "FAIL", colour.PASS if passed else colour.FAIL),
        ]
    )


@app.command()
def explain(
    method: Annotated[str, typer.Argument(help="HTTP method, e.g. POST.")],
    url: Annotated[str, typer.Argument(help="Full URL, e.g. https://api.openai.com/v1/models.")],
    policy: Annotated[
        list[Path] | None, typer.Option("--policy", "-p", help="Policy file or folder (default: the applied policy).")
    ] = None,
    agent: Annotated[str | None, typer.Option(help="The agent sending the request.")] = None,
    data: Annotated[str | None, typer.Option(help="Request body (JSON for json.* conditions).")] = None,
    header: Annotated[list[str] | None, typer.Option(help='A request header, "Name: value"; repeatable.')] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show what the policy decides for one request, and why.

    Example: firewall policy explain POST https://api.openai.com/v1/chat/completions
    --policy policies/openai.policy --agent ci --data '{"model": "gpt-4o-mini"}'
    """
    compiled = compile_or_exit(policy).policy if policy else _applied_policy()
    headers = tuple(_parse_header(h) for h in header or ())
    body = (data or "").encode()
    if data is not None and not any(k.lower() == "content-type" for k, _ in headers):
        headers += (("content-type", "application/json"),)
    try:
        request = Request.from_url(method, url, agent=agent, headers=headers, body=body)
    except ValueError as exc:
        fail(str(exc))
    decision = decide(compiled, request, 0.0)
    if as_json:
        typer.echo(json.dumps(decision_json(decision), indent=2))
    else:
        typer.echo(_describe(method.upper(), url, agent, decision))


def _applied_policy():
    from firewall.cli.state import applied_policy_or_exit

    return applied_policy_or_exit()


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        fail(f'--header {text!r} is not "Name: value"')
    return name.strip(), value.strip()


def decision_json(decision: Decision) -> dict:
    """The JSON form of a decision (credential names only, never values)."""
    return {
        "decision": decision.verdict.value,
        "would": decision.would.value if decision.would else None,
        "reason": decision.reason.value,
        "message": decision.message,
        "rule": (
            {"file": decision.rule.file, "line": decision.rule.line, "text": decision.rule.text, "id": decision.rule.id}
            if decision.rule
            else None
        ),
        "rule_reason": decision.rule_reason,
        "limits": [
            {
                "amount": limit.amount,
                "per": limit.period,
                "per_agent": limit.agent is not None,
                "rule": limit.source.location,
                "text": limit.source.text,
            }
            for limit in decision.limits
        ],
        "budgets": [
            {
                "amount": budget.amount / 1_000_000 if budget.measure == "usd" else budget.amount,
                "measure": budget.measure,
                "per": budget.period,
                "per_agent": budget.agent is not None,
                "reserve_max_tokens": budget.reserve,
                "usage_unreadable": budget.unreadable,
                "rule": budget.source.location,
                "text": budget.source.text,
            }
            for budget in decision.budgets
        ],
        "inject": [i.credential for i in decision.inject],
        "host": decision.host,
        "path": decision.canonical_path,
        "mode": decision.mode.value,
        "policy_sha256": decision.policy_sha256,
    }


def _describe(method: str, url: str, agent: str | None, decision: Decision) -> str:
    lines = [f"{method} {url}" + (f"  (agent {agent})" if agent else "")]
    verdict = decision.verdict.value
    if decision.would:
        verdict += f" (mode report: would {decision.would.value})"
    lines.append(f"  decision  {verdict}")
    lines.append(f"  reason    {decision.reason.value}: {decision.message}")
    if decision.rule:
        named = f" ({decision.rule.name})" if decision.rule.name else ""
        lines.append(f"  rule      {decision.rule.location}{named}  {decision.rule.text}")
    else:
        lines.append("  rule      none (built-in default: block)")
    if decision.rule_reason:
        lines.append(f"  note      {decision.rule_reason}")
    if decision.canonical_path:
        lines.append(f"  path      {decision.canonical_path}")
    for limit in decision.limits:
        lines.append(f"  limit     {limit.source.text}  ({limit.source.location})")
    for budget in decision.budgets:
        lines.append(f"  budget    {budget.source.text}  ({budget.source.location})")
    for injection in decision.inject:
        where = f"header {injection.name}" if injection.kind == "header" else injection.kind
        if injection.kind == "query":
            where = f"query parameter {injection.name}"
        lines.append(f"  inject    {injection.credential} ({where})")
    return "\n".join(lines)


@app.command("fmt")
def fmt_command(
    paths: PathsArg,
    check_only: Annotated[bool, typer.Option("--check", help="Only report files that are not formatted.")] = False,
    show_diff: Annotated[
        bool, typer.Option("--diff", help="Print what fmt would change as a unified diff; change nothing.")
    ] = False,
) -> None:
    """Rewrite policy files in the canonical layout (comments are kept).

    With --check, change nothing: list unformatted files and exit 1 if there are any. With --diff,
    change nothing either: print the changes as a unified diff and exit 1 if there are any.

    Example: firewall policy fmt --check --diff policies/
    """
    try:
        files = [read_policy_file(path) for path in policy_paths(paths)]
    except PolicyError as exc:
        typer.echo(exc.render(), err=True)
        raise typer.Exit(EXIT_INVALID_POLICY) from None
    write = not (check_only or show_diff)
    changed = []
    for file in files:
        formatted = format_policy(file)
        if formatted == file.source:
            continue
        changed.append(file.path)
        if show_diff:
            echo_diff(file.source, formatted, f"{file.path} (now)", f"{file.path} (formatted)")
        if write:
            _replace_file(Path(file.path), formatted)
    for path in changed:
        typer.echo(f"{'reformatted' if write else 'would reformat'} {path}", err=show_diff)
    if not changed:
        typer.echo(f"{len(files)} file(s) already formatted")
    if changed and not write:
        raise typer.Exit(1)


def echo_diff(before: str, after: str, before_name: str, after_name: str) -> None:
    """A unified diff of two texts, coloured on a terminal."""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), before_name, after_name, lineterm="")
    for line in lines:
        colour.echo([(line, colour.diff_style(line))])


def _replace_file(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.fmt.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, path.stat().st_mode & 0o777)
    os.replace(tmp, path)
