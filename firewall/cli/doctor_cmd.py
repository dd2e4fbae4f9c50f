"""`firewall doctor`: check the setup and every runtime's way through the proxy."""

from __future__ import annotations

import sys
from typing import Annotated

import typer


def doctor(
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    no_probes: Annotated[bool, typer.Option("--no-probes", help="Check the setup only; run no runtime.")] = False,
) -> None:
    """Check the state folder, vault, policy, proxy, isolation and limits store, and probe each
    runtime found (Python, Node, curl, wget, git, pip, uv, Go, the Codex CLI) under `firewall run`: does its traffic go
    through the proxy, and does it trust the firewall's CA? Prints the fix for every failing
    line; exits 1 when something fails. Changes nothing.

    Example: firewall doctor --json
    """
    from firewall.doctor import report
    from firewall.doctor.run import diagnose
    from firewall.state.home import Home, default_root
    from firewall.text import terminal_width

    lines = diagnose(Home(default_root()), with_probes=not no_probes)
    typer.echo(report.as_json(lines) if json_output else report.table(lines, terminal_width(sys.stdout)))
    raise typer.Exit(1 if report.failed(lines) else 0)
