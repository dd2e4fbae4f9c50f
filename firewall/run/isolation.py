"""`firewall run`'s sandbox for one state folder: what it hides, and running the agent in it."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from firewall.run import supervise
from firewall.run.sandbox import MARKER, Mounts, SandboxError, find_bwrap  # noqa: F401 (the names session.py uses)
from firewall.run.supervise import die_with_parent, wait_forwarding  # noqa: F401 (likewise)
from firewall.state.home import Home, platform_root


def run_isolated(
    home: Home,
    port: int,
    command: list[str],
    env: dict[str, str],
    readable: tuple[Path, ...],
    writable: tuple[Path, ...],
) -> int:
    """Run `command` in a sandbox whose only way out is the proxy on 127.0.0.1:`port`; its exit code."""
    hidden = (*hidden_state(home), *runtime_dirs(), *display_dirs())
    mounts = Mounts(hidden, readable, writable, (*service_sockets(), *agent_sockets(os.environ)))
    return supervise.run_in(mounts, port, command, env)


def hidden_state(home: Home) -> tuple[Path, ...]:
    """The state folders an agent must not see: this run's, and the platform's default one (a nested
    `firewall run` that lost $FIREWALL_HOME would look there)."""
    folders: list[Path] = []
    for root in (home.root, platform_root()):
        if root.exists() and (real := root.resolve()) not in folders:
            folders.append(real)
    return tuple(folders)


# Unix sockets outside the user's runtime folder through which a process can have a command run
# outside the sandbox (the Docker and Podman APIs) or talk to the system's services (D-Bus).
SERVICE_SOCKETS = (
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/podman/podman.sock",
    "/run/dbus/system_bus_socket",
    "/var/run/dbus/system_bus_socket",
)


def runtime_dirs() -> tuple[Path, ...]:
    """The user's runtime folder (/run/user/UID): its D-Bus session bus and systemd's socket would
    let the agent start a command outside the sandbox (`systemd-run --user`), and rootless Docker
    or Podman keep their sockets there."""
    found = {Path(f"/run/user/{os.getuid()}")}
    if configured := os.environ.get("XDG_RUNTIME_DIR"):
        found.add(Path(configured))
    return tuple(sorted(path.resolve() for path in found if _private_dir(path)))


def _private_dir(path: Path) -> bool:
    """A runtime folder as the XDG spec has it: the user's own, 0700 (never /tmp, say)."""
    try:
        info = path.stat()
    except OSError:
        return False
    return path.is_dir() and info.st_uid == os.getuid() and info.st_mode & 0o077 == 0


def service_sockets() -> tuple[Path, ...]:
    return tuple(sorted({Path(path).resolve() for path in SERVICE_SOCKETS if Path(path).exists()}))


# Environment variables naming a Unix socket of a key agent: through one, the agent could sign
# with (or, with ssh-agent forwarding, use) the user's keys outside the sandbox.
AGENT_SOCKET_VARIABLES = ("SSH_AUTH_SOCK", "GPG_AGENT_INFO")


def agent_sockets(env: Mapping[str, str]) -> tuple[Path, ...]:
    """The key agents' socket files the environment names (GPG_AGENT_INFO is `path:pid:1`)."""
    found = set()
    for name in AGENT_SOCKET_VARIABLES:
        if value := env.get(name, "").split(":")[0]:
            path = Path(value)
            try:
                if stat.S_ISSOCK(path.stat().st_mode):
                    found.add(path.resolve())
            except OSError:
                continue
    return tuple(sorted(found))


# The X server's socket folder: a client connected to the user's display can read its windows
# and type into them. (Its abstract socket is cut off by the network namespace already.)
DISPLAY_DIRS = ("/tmp/.X11-unix",)


def display_dirs() -> tuple[Path, ...]:
    return tuple(Path(path) for path in DISPLAY_DIRS if Path(path).is_dir())
