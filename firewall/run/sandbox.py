"""The agent's sandbox: bubblewrap (bwrap) with new user, network, mount, PID and IPC namespaces.

Inside, the network has only loopback; the proxy's address on it is served by a
listener `inner.py` makes in there and hands out (see relay.py). The state folder
is an empty tmpfs, with only the CA files the agent must trust bound back in
read-only; /proc is the sandbox's own, so no parent's environment can be read.
The rest of the filesystem is as before (the host's / bound read-write).
bwrap's --die-with-parent ends the sandbox, and every process in it, when
`firewall run` ends, even by SIGKILL.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

INNER = Path(__file__).with_name("inner.py")
MARKER = "AGENT_FIREWALL_SANDBOX"  # set inside a sandbox; a nested `firewall run` refuses to start
START_TIMEOUT = 30.0
NAMESPACES = ("--unshare-user", "--unshare-net", "--unshare-pid", "--unshare-ipc")
# bwrap ignores these (it would die of them and take the agent with it); `firewall run`
# forwards them to the agent itself, and inner.py gives the agent the defaults back.
SHIELDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
NO_USERNS_FIX = (
    "allow them (`sysctl -w kernel.unprivileged_userns_clone=1`; on Ubuntu 24.04+ "
    "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor profile for bwrap) "
    "or run without isolation: `firewall run --no-isolate -- ...`"
)


class SandboxError(Exception):
    """The sandbox could not start; worded for the user, with the fix."""


@dataclass(frozen=True)
class Mounts:
    hidden: tuple[Path, ...]  # empty tmpfs over each
    readable: tuple[Path, ...]  # bound back read-only (files inside a hidden folder)
    writable: tuple[Path, ...] = ()  # bound back read-write


@dataclass
class Started:
    process: subprocess.Popen  # bwrap
    listener: socket.socket  # the proxy's address inside the sandbox, accepted on out here
    agent_pid: int  # the agent's pid as this process sees it: where signals are forwarded


def find_bwrap() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxError(
            "bubblewrap (bwrap) is not installed; `firewall run` isolates the agent with it: "
            "install it (`apt-get install bubblewrap`, `dnf install bubblewrap`) "
            "or run without isolation: `firewall run --no-isolate -- ...`"
        )
    return found


def bwrap_argv(bwrap: str, mounts: Mounts, port: int, channel_fd: int, command: list[str]) -> list[str]:
    # --cap-drop ALL: bwrap keeps every capability for a caller that is root, with which the agent
    # could unmount the tmpfs over the state folder (and set no_new_privs keeps them from coming back).
    argv = [bwrap, *NAMESPACES, "--cap-drop", "ALL", "--die-with-parent",
            "--dev-bind", "/", "/", "--proc", "/proc"]
    for path in mounts.hidden:
        argv += ["--tmpfs", str(path)]
    for path in mounts.readable:
        argv += ["--ro-bind", str(path), str(path)]
    for path in mounts.writable:
        argv += ["--bind", str(path), str(path)]
    inner = [sys.executable, "-I", "-S", str(INNER), str(port), str(channel_fd), "--"]
    return [*argv, "--", *inner, *command]


def start(mounts: Mounts, port: int, command: list[str], env: dict[str, str]) -> Started:
    """Start `command` in a sandbox whose 127.0.0.1:`port` comes back here as a listening socket."""
    bwrap = find_bwrap()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    try:
        process = subprocess.Popen(
            bwrap_argv(bwrap, mounts, port, theirs.fileno(), command),
            env={**env, MARKER: "1"}, pass_fds=(theirs.fileno(),), preexec_fn=_shield,
        )
    except OSError as exc:
        ours.close()
        raise SandboxError(f"cannot start {bwrap}: {exc.strerror}") from exc
    finally:
        theirs.close()
    try:
        listener, agent_pid = _receive(ours, process)
    finally:
        ours.close()
    if listener is None:
        code = process.wait()
        if (why := refusal(bwrap)) is not None:
            raise SandboxError(why)
        raise SandboxError(f"the sandbox did not start (bwrap exited {code}); see bwrap's message above")
    return Started(process, listener, agent_pid)


def _shield() -> None:
    for signum in SHIELDED:
        signal.signal(signum, signal.SIG_IGN)


def _receive(channel: socket.socket, process: subprocess.Popen) -> tuple[socket.socket | None, int]:
    """The listener and the agent's pid that inner.py sends, or (None, 0) if the sandbox ended first."""
    deadline = time.monotonic() + START_TIMEOUT
    while process.poll() is None and time.monotonic() < deadline:
        if not select.select([channel], [], [], 0.05)[0]:
            continue
        size = struct.calcsize("i")
        data, ancillary, _, _ = channel.recvmsg(1, socket.CMSG_SPACE(size) + socket.CMSG_SPACE(3 * size))
        if not data:
            return None, 0
        fds, pid = [], 0
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += struct.unpack(f"{len(payload) // size}i", payload[: len(payload) - len(payload) % size])
            elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", payload[: 3 * size])[0]
        if len(fds) != 1 or pid <= 0:
            for fd in fds:
                os.close(fd)
            return None, 0
        return socket.socket(fileno=fds[0]), pid
    if process.poll() is None:
        process.kill()
    return None, 0


def refusal(bwrap: str) -> str | None:
    """Why this kernel refuses the namespaces, found by trying the smallest sandbox, or None."""
    probe = subprocess.run(
        [bwrap, *NAMESPACES, "--ro-bind", "/", "/", "true"], capture_output=True, text=True, timeout=10
    )
    if probe.returncode == 0:
        return None
    said = " ".join(probe.stderr.split()) or f"exit {probe.returncode}"
    return f"this system refuses the user namespaces the agent's sandbox needs ({said}); {NO_USERNS_FIX}"
