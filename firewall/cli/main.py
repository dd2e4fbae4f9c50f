"""The `firewall` command: a root Typer app with one sub-app per command group.

Each group lives in its own module and exports `app`; register it here.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer


def _build_app() -> typer.Typer:
    """The Typer app, made on first use of `app` (module __getattr__ below), which it then is:
    `firewall run` of the usual shape runs without Typer at all (firewall/cli/run_plain.py)."""
    import typer

    from firewall.cli import help_style

    help_style.install()
    global app
    app = typer.Typer(
        name="firewall",
        help="A policy-as-code egress firewall for AI agents.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    _add_root(app)
    if _invoked_as("run"):
        _only_run()
    else:
        _register()
    return app


def __getattr__(name: str) -> object:
    if name == "app":
        return _build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _add_root(app: typer.Typer) -> None:
    """The root callback: `--version`, and it keeps `run` a subcommand when it is the only one."""
    import typer

    def version(value: bool) -> None:
        if value:
            from importlib.metadata import PackageNotFoundError
            from importlib.metadata import version as installed

            try:
                typer.echo(f"agent-firewall {installed('agent-firewall')}")
            except PackageNotFoundError:
                typer.echo("agent-firewall (not installed as a package)")
            raise typer.Exit()

    @app.callback()
    def root(
        show_version: bool = typer.Option(
            False, "--version", callback=version, is_eager=True, help="Print the version and exit."
        ),
    ) -> None:
        """A policy-as-code egress firewall for AI agents."""


def _register() -> None:
    from firewall.cli import (  # noqa: F401  (adds apply, replay, suggest, ...)
        policy_cmd,
        policy_replay_cmd,
        policy_suggest_cmd,
        policy_versions_cmd,
    )

    app.add_typer(policy_cmd.app, name="policy")

    from firewall.cli import proxy_cmd, run_app

    app.add_typer(proxy_cmd.app, name="proxy")
    app.command("run", context_settings={"ignore_unknown_options": True})(run_app.run)

    from firewall.cli import demo_cmd

    app.command("demo")(demo_cmd.demo)

    from firewall.cli import init_cmd, secrets_cmd

    app.command("init")(init_cmd.init)
    app.add_typer(secrets_cmd.app, name="secrets")

    from firewall.cli import audit_cmd

    app.add_typer(audit_cmd.app, name="audit")

    from firewall.cli import approvals_cmd

    app.add_typer(approvals_cmd.app, name="approvals")

    from firewall.cli import budgets_cmd

    app.command("budgets")(budgets_cmd.budgets)

    from firewall.cli import doctor_cmd

    app.command("doctor")(doctor_cmd.doctor)


def _only_run() -> None:
    """`firewall run` starts the agent's proxy first thing: load that command alone, not every
    command's modules (the policy compiler, audit, approvals, ...: a few hundred ms)."""
    from firewall.cli import run_app

    app.command("run", context_settings={"ignore_unknown_options": True})(run_app.run)


def _invoked_as(command: str) -> bool:
    """Whether this process is the `firewall` command (script or `python -m firewall`) running `command`."""
    entry = os.path.basename(sys.argv[0]) if sys.argv else ""
    is_cli = entry == "firewall" or sys.argv[0].endswith(os.path.join("firewall", "__main__.py"))
    return is_cli and sys.argv[1:2] == [command]


def main() -> None:
    from firewall.cli.errors import fail
    from firewall.vault import VaultError, handoff

    try:
        handoff.adopt()  # a passphrase handed over by pipe, never by environment
    except VaultError as exc:
        fail(str(exc))
    try:
        if _invoked_as("run"):
            from firewall.cli import run_plain

            code = run_plain.main(sys.argv[2:])
            if code is not None:
                sys.exit(code)
        __getattr__("app")()
    except Exception as exc:  # what no command expected: one line, the traceback in the log
        from firewall.state.failures import report

        sys.exit(report(exc))
