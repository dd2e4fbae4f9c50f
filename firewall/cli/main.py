"""The `firewall` command: a root Typer app with one sub-app per command group.

Each group lives in its own module and exports `app`; register it here, in COMMANDS (below).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer


@dataclass(frozen=True)
class LazyCommand:
    """A command of the root: the first paragraph of its help (what `firewall --help` lists, read
    without loading the command), and the function that adds it to an app (importing its modules)."""

    help: str
    add: Callable[[typer.Typer], None]


def _root(**settings: Any) -> typer.Typer:
    import typer

    from firewall.cli import help_style

    help_style.install()
    root = typer.Typer(
        name="firewall",
        help="A policy-as-code egress firewall for AI agents.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        **settings,
    )
    _add_root(root)
    return root


def _build_app() -> typer.Typer:
    """The Typer app with every command registered, made on first use of `app` (module
    __getattr__ below), which it then is: for tests and documentation. `firewall` itself runs
    `_lazy_app()`, and `firewall run` of the usual shape no Typer at all (cli/run_plain.py)."""
    global app
    app = _root()
    for command in COMMANDS.values():
        command.add(app)
    return app


def _lazy_app() -> typer.Typer:
    """The app `main()` runs: the root lists every command and loads only the one invoked
    (cli/lazy_root.py); tests/cli/test_lazy_root.py checks it reads as `app` does."""
    from firewall.cli.lazy_root import LazyRoot

    lazy = type("FirewallRoot", (LazyRoot,), {"lazy": COMMANDS})
    return _root(cls=lazy)


def __getattr__(name: str) -> object:
    if name == "app":
        return _build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _add_root(app: typer.Typer) -> None:
    """The root callback: `--version`."""
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


# ---- the commands, in the order `firewall --help` lists them (Typer's: commands, then groups) ----
# Each is added by a function that imports its modules; its help line is the first paragraph
# of the command's own help, which the root lists without importing anything
# (tests/cli/test_lazy_root.py: the two must agree).


def _add_policy(app: typer.Typer) -> None:
    from firewall.cli import (  # noqa: F401  (adds apply, replay, suggest, ...)
        policy_cmd,
        policy_replay_cmd,
        policy_suggest_cmd,
        policy_versions_cmd,
    )

    app.add_typer(policy_cmd.app, name="policy")


def _add_proxy(app: typer.Typer) -> None:
    from firewall.cli import proxy_cmd

    app.add_typer(proxy_cmd.app, name="proxy")


def _add_run(app: typer.Typer) -> None:
    from firewall.cli import run_app

    app.command("run", context_settings={"ignore_unknown_options": True})(run_app.run)


def _add_demo(app: typer.Typer) -> None:
    from firewall.cli import demo_cmd

    app.command("demo")(demo_cmd.demo)


def _add_init(app: typer.Typer) -> None:
    from firewall.cli import init_cmd

    app.command("init")(init_cmd.init)


def _add_secrets(app: typer.Typer) -> None:
    from firewall.cli import secrets_cmd

    app.add_typer(secrets_cmd.app, name="secrets")


def _add_audit(app: typer.Typer) -> None:
    from firewall.cli import audit_cmd

    app.add_typer(audit_cmd.app, name="audit")


def _add_approvals(app: typer.Typer) -> None:
    from firewall.cli import approvals_cmd

    app.add_typer(approvals_cmd.app, name="approvals")


def _add_budgets(app: typer.Typer) -> None:
    from firewall.cli import budgets_cmd

    app.command("budgets")(budgets_cmd.budgets)


def _add_doctor(app: typer.Typer) -> None:
    from firewall.cli import doctor_cmd

    app.command("doctor")(doctor_cmd.doctor)


COMMANDS = {
    "run": LazyCommand("Run CMD with its HTTP(S) sent through the firewall; exit with CMD's exit code.", _add_run),
    "demo": LazyCommand("Run an agent through the firewall against a local stand-in for the OpenAI API.", _add_demo),
    "init": LazyCommand(
        "Create the state folder (owner-only) and the vault's key; say where they are. Safe to run again.",
        _add_init,
    ),
    "budgets": LazyCommand(
        "Show each budget of the policy in force: what each agent used in the current window, of what limit, "
        "and when it resets. Exits 1 when no proxy is running (nothing is counting then).",
        _add_budgets,
    ),
    "doctor": LazyCommand(
        "Check the state folder, vault, policy, proxy, isolation and limits store, and probe each runtime "
        "found (Python, Node, curl, wget, git, pip, uv, Go, the Codex CLI) under `firewall run`: does its "
        "traffic go through the proxy, and does it trust the firewall's CA? Prints the fix for every failing "
        "line; exits 1 when something fails. Changes nothing.",
        _add_doctor,
    ),
    "policy": LazyCommand("Check, test, explain, format and apply policies.", _add_policy),
    "proxy": LazyCommand("Start, stop and inspect the proxy.", _add_proxy),
    "secrets": LazyCommand("Add, list, rotate and remove the credentials the proxy injects.", _add_secrets),
    "audit": LazyCommand(
        "List audit rows, newest last; subcommands tail, count, prune, checkpoint and verify them.", _add_audit
    ),
    "approvals": LazyCommand(
        "Answer requests held for a person's approval; with no subcommand, ask in this terminal.", _add_approvals
    ),
}


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
        _lazy_app()()
    except Exception as exc:  # what no command expected: one line, the traceback in the log
        from firewall.state.failures import report

        sys.exit(report(exc))
