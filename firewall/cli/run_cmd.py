"""`firewall run`: run an agent with all its HTTP(S) going through the firewall.

The run itself is firewall/run/session.py's `RunSession`; this reads the pinned policy and
turns a `RunError` into an exit. No Typer here: its options are declared in
firewall/cli/run_app.py, and the usual command line is read without Typer at all
(firewall/cli/run_plain.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from firewall.cli.errors import fail, warn
from firewall.cli.state import home_or_exit
from firewall.run.session import RunError, RunSession, preflight
from firewall.state.home import Home

if TYPE_CHECKING:
    from firewall.policy import CompiledPolicy


def run_command(
    command: list[str], agent: str, policy: list[Path] | None, upstream_ca: Path | None, no_isolate: bool
) -> int:
    """`firewall run`'s work, without Typer (firewall/cli/run_plain.py calls it directly): the exit code."""
    try:
        preflight(command, agent)
        home = home_or_exit()
        pinned = _pinned_policy(home, policy) if policy else None
        session = RunSession(home, agent, command, isolate=not no_isolate, upstream_ca=upstream_ca, warn=warn)
        return session.run(pinned)
    except RunError as exc:
        fail(str(exc), code=exc.code)


def _pinned_policy(home: Home, paths: list[Path]) -> CompiledPolicy:
    """`--policy PATH`: compiled (errors with their carets), with every vault entry it injects."""
    from firewall.cli.applying import missing_secrets
    from firewall.cli.policy_cmd import compile_or_exit

    compiled = compile_or_exit(paths).policy
    missing = missing_secrets(home, compiled.secrets())
    if missing:
        fail(
            "the policy injects credentials whose vault entries do not exist: "
            + ", ".join(missing)
            + "; add them with `firewall secrets add NAME` first"
        )
    return compiled
