"""The agent's sandbox: bubblewrap (bwrap) with new user, network, mount, PID and IPC namespaces.

Inside, the network has only loopback; the proxy's address on it is a listener made
in the sandbox's namespace and accepted on out here (netns.py, relay.py). bwrap waits
(--block-fd) until that listener exists before it starts the command. The state folder
is an empty tmpfs, with only the CA files the agent must trust bound back in read-only;
/proc is the sandbox's own, so no parent's environment can be read. The rest of the
filesystem is as before (the host's / bound read-write). bwrap's --die-with-parent ends
the sandbox, and every process in it, when `firewall run` ends, even by SIGKILL.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from firewall.run.netns import NamespaceError, listen_in

MARKER = "AGENT_FIREWALL_SANDBOX"  # set inside a sandbox; a nested `firewall run` refuses to start
START_TIMEOUT = 30.0
NAMESPACES = ("--unshare-user", "--unshare-net", "--unshare-pid", "--unshare-ipc")
# bwrap ignores these (it would die of them and take the agent with it); `firewall run`
# forwards them to the agent itself, and `env --default-signal` gives the agent the defaults back.
SHIELDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
DEFAULT_SIGNALS = "--default-signal=INT,TERM,HUP,QUIT"  # GNU env (coreutils 8.31+)
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
    blocked: tuple[Path, ...] = ()  # Unix socket files replaced by /dev/null: connect() is refused


@dataclass
class Started:
    process: subprocess.Popen  # bwrap
    listener: socket.socket  # the proxy's address inside the sandbox, accepted on out here
    agent_pid: int  # the command's pid as this process sees it: where signals are forwarded


def find_bwrap() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxError(
            "bubblewrap (bwrap) is not installed; `firewall run` isolates the agent with it: "
            "install it (`apt-get install bubblewrap`, `dnf install bubblewrap`) "
            "or run without isolation: `firewall run --no-isolate -- ...`"
        )
    return found


def bwrap_argv(
    bwrap: str, env_program: str, mounts: Mounts, info_fd: int, block_fd: int, command: list[str]
) -> list[str]:
    # --cap-drop ALL: bwrap keeps every capability for a caller that is root, with which the agent
    # could unmount the tmpfs over the state folder (and set no_new_privs keeps them from coming back).
    argv = [
        bwrap,
        *NAMESPACES,
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--info-fd",
        str(info_fd),
        "--block-fd",
        str(block_fd),
        "--dev-bind",
        "/",
        "/",
        "--proc",
        "/proc",
    ]
    for path in sorted(mounts.hidden, key=lambda hidden: len(Path(hidden).parts)):  # a parent first
        argv += ["--tmpfs", str(path)]
    for path in mounts.blocked:
        argv += ["--ro-bind", "/dev/null", str(path)]
    for path in mounts.readable:
        argv += ["--ro-bind", str(path), str(path)]
    for path in mounts.writable:
        argv += ["--bind", str(path), str(path)]
    return [*argv, "--", env_program, DEFAULT_SIGNALS, "--", *command]


def start(mounts: Mounts, port: int, command: list[str], env: dict[str, str]) -> Started:
    """Start `command` in a sandbox whose 127.0.0.1:`port` comes back here as a listening socket."""
    bwrap, env_program = find_bwrap(), _env_program()
    info_read, info_write = os.pipe()
    block_read, block_write = os.pipe()
    try:
        try:
            process = subprocess.Popen(
                bwrap_argv(bwrap, env_program, mounts, info_write, block_read, command),
                env={**env, MARKER: "1"},
                pass_fds=(info_write, block_read),
                preexec_fn=_shield,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start {bwrap}: {exc.strerror}") from exc
        finally:
            os.close(info_write)
            os.close(block_read)
        try:
            return _set_up(process, info_read, block_write, port, bwrap)
        except BaseException:
            if process.poll() is None:
                process.kill()
                process.wait()
            raise
    finally:
        os.close(info_read)
        os.close(block_write)


def _set_up(process: subprocess.Popen, info_read: int, block_write: int, port: int, bwrap: str) -> Started:
    sandbox_pid = _sandbox_pid(process, info_read)
    if sandbox_pid is None:
        code = process.wait()
        if (why := refusal(bwrap)) is not None:
            raise SandboxError(why)
        raise SandboxError(f"the sandbox did not start (bwrap exited {code}); see bwrap's message above")
    try:
        listener = listen_in(sandbox_pid, port)
    except NamespaceError as exc:
        raise SandboxError(f"{exc}; run without isolation with `firewall run --no-isolate -- ...`") from exc
    os.write(block_write, b"go")  # bwrap starts the command now
    agent_pid = _first_child(sandbox_pid, process)
    return Started(process, listener, agent_pid or sandbox_pid)


def _env_program() -> str:
    found = shutil.which("env") or "/usr/bin/env"
    probe = subprocess.run([found, DEFAULT_SIGNALS, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        raise SandboxError(
            f"{found} does not know {DEFAULT_SIGNALS} (GNU coreutils 8.31 or later does); "
            "update coreutils or run without isolation: `firewall run --no-isolate -- ...`"
        )
    return found


def _shield() -> None:
    for signum in SHIELDED:
        signal.signal(signum, signal.SIG_IGN)


def _sandbox_pid(process: subprocess.Popen, info_read: int) -> int | None:
    """The pid (as seen here) of the sandbox's first process, from bwrap's --info-fd, or None if
    bwrap ended before it made one."""
    data = b""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if select.select([info_read], [], [], 0.05)[0]:
            chunk = os.read(info_read, 4096)
            if not chunk:
                break
            data += chunk
            try:
                return int(json.loads(data)["child-pid"])
            except (ValueError, KeyError):
                continue  # not all of it yet
        elif process.poll() is not None:
            break
    return None


def _first_child(pid: int, process: subprocess.Popen) -> int | None:
    """The sandbox's command: the first child of its init (bwrap's reaper), once it is there."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return None
        if children:
            return int(children[0])
        time.sleep(0.001)
    return None


def refusal(bwrap: str) -> str | None:
    """Why this kernel refuses the namespaces, found by trying the smallest sandbox, or None."""
    probe = subprocess.run(
        [bwrap, *NAMESPACES, "--ro-bind", "/", "/", "true"], capture_output=True, text=True, timeout=10, check=False
    )
    if probe.returncode == 0:
        return None
    said = " ".join(probe.stderr.split()) or f"exit {probe.returncode}"
    return f"this system refuses the user namespaces the agent's sandbox needs ({said}); {NO_USERNS_FIX}"
