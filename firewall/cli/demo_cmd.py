"""`firewall demo`: see the whole firewall work, offline, in a minute."""

from __future__ import annotations

from typing import Annotated

import typer


def demo(keep: Annotated[bool, typer.Option(help="Keep the temporary state folder to explore it.")] = False) -> None:
    """Run an agent through the firewall against a local stand-in for the OpenAI API.

    Uses a temporary state folder (your own is not touched) and no network: a
    policy is tested and applied, a real key goes into the vault, an agent makes
    allowed, blocked and rate-limited calls, and the audit log shows why.

    Example: firewall demo --keep
    """
    from firewall.demo.run import run_demo

    raise typer.Exit(run_demo(keep))
