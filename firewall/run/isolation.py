"""`firewall run`'s sandbox for one state folder: what it hides, and running the agent in it."""

from __future__ import annotations

from pathlib import Path

from firewall.run import supervise
from firewall.run.sandbox import MARKER, Mounts, SandboxError, find_bwrap  # noqa: F401 (the names run_cmd uses)
from firewall.run.supervise import die_with_parent, wait_forwarding  # noqa: F401 (likewise)
from firewall.state.home import Home, platform_root


def run_isolated(home: Home, port: int, command: list[str], env: dict[str, str],
                 readable: tuple[Path, ...], writable: tuple[Path, ...]) -> int:
    """Run `command` in a sandbox whose only way out is the proxy on 127.0.0.1:`port`; its exit code."""
    return supervise.run_in(Mounts(hidden_state(home), readable, writable), port, command, env)


def hidden_state(home: Home) -> tuple[Path, ...]:
    """The state folders an agent must not see: this run's, and the platform's default one (a nested
    `firewall run` that lost $FIREWALL_HOME would look there)."""
    folders: list[Path] = []
    for root in (home.root, platform_root()):
        if root.exists() and (real := root.resolve()) not in folders:
            folders.append(real)
    return tuple(folders)
