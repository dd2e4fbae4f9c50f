"""The `firewall` command: a root Typer app with one sub-app per command group.

Each group lives in its own module and exports `app`; register it here.
"""

from __future__ import annotations

import os
import sys

import typer

from firewall.cli import help_style

help_style.install()

app = typer.Typer(
    name="firewall",
    help="A policy-as-code egress firewall for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"agent-firewall {version('agent-firewall')}")
        except PackageNotFoundError:
            typer.echo("agent-firewall (not installed as a package)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """A policy-as-code egress firewall for AI agents."""


def _register() -> None:
    from firewall.cli import policy_cmd, policy_versions_cmd  # noqa: F401  (adds apply/show/history/rollback)

    app.add_typer(policy_cmd.app, name="policy")

    from firewall.cli import proxy_cmd, run_cmd

    app.add_typer(proxy_cmd.app, name="proxy")
    app.command("run", context_settings={"ignore_unknown_options": True})(run_cmd.run)

    from firewall.cli import demo_cmd

    app.command("demo")(demo_cmd.demo)

    from firewall.cli import init_cmd, secrets_cmd

    app.command("init")(init_cmd.init)
    app.add_typer(secrets_cmd.app, name="secrets")

    from firewall.cli import audit_cmd

    app.add_typer(audit_cmd.app, name="audit")

    from firewall.cli import approvals_cmd

    app.add_typer(approvals_cmd.app, name="approvals")


def _only_run() -> None:
    """`firewall run` starts the agent's proxy first thing: load that command alone, not every
    command's modules (the policy compiler, audit, approvals, ...: a few hundred ms)."""
    from firewall.cli import run_cmd

    app.command("run", context_settings={"ignore_unknown_options": True})(run_cmd.run)


def _invoked_as(command: str) -> bool:
    """Whether this process is the `firewall` command (script or `python -m firewall`) running `command`."""
    entry = os.path.basename(sys.argv[0]) if sys.argv else ""
    is_cli = entry == "firewall" or sys.argv[0].endswith(os.path.join("firewall", "__main__.py"))
    return is_cli and sys.argv[1:2] == [command]


if _invoked_as("run"):
    _only_run()
else:
    _register()


def main() -> None:
    from firewall.cli.errors import fail
    from firewall.vault import VaultError, handoff

    try:
        handoff.adopt()  # a passphrase handed over by pipe, never by environment
    except VaultError as exc:
        fail(str(exc))
    try:
        app()
    except Exception as exc:  # what no command expected: one line, the traceback in the log
        from firewall.cli.boundary import report

        sys.exit(report(exc))
