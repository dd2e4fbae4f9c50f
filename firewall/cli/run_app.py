"""`firewall run`'s options, as Typer reads them (`--help`, and command lines run_plain leaves to it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from firewall.cli.run_cmd import run_command


def run(
    command: Annotated[
        list[str], typer.Argument(metavar="CMD", help="The agent's command and its arguments, after --.")
    ],
    agent: Annotated[str, typer.Option(help="The agent's name, as policies and the audit log see it.")] = "default",
    policy: Annotated[
        list[Path] | None, typer.Option(help="Run under this policy without applying it for everyone.")
    ] = None,
    upstream_ca: Annotated[
        Path | None,
        typer.Option(help="Extra CA (PEM) for upstream servers; a shared proxy must have been started with it."),
    ] = None,
    no_isolate: Annotated[
        bool, typer.Option("--no-isolate", help="Do not sandbox the command: it could reach the network directly.")
    ] = False,
) -> None:
    """Run CMD with its HTTP(S) sent through the firewall; exit with CMD's exit code.

    Uses the running proxy, or starts one for the command's lifetime. The agent gets
    proxy credentials of its own, trusts the firewall's CA, and sees placeholder API
    keys only: the real ones are added by the proxy, after the policy allows a request.

    On Linux the command runs in a sandbox (bubblewrap): its only network is the
    proxy, and the state folder is hidden from it. --no-isolate runs it as is.

    Example: firewall run --agent ci -- python agent.py
    """
    raise typer.Exit(run_command(command, agent, policy, upstream_ca, no_isolate))
