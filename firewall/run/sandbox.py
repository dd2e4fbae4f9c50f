"""The agent's sandbox: bubblewrap (bwrap) with new user, network, mount, PID and IPC namespaces.

Inside, the network has only loopback; the proxy's address on it is a listener made
in the sandbox's namespace and accepted on out here (netns.py, relay.py). bwrap waits
(--block-fd) until that listener exists before it starts the command. The state folder
is an empty tmpfs, with only the CA files the agent must trust bound back in read-only;
/proc is the sandbox's own, so no parent's environment can be read. The rest of the
filesystem is as before (the host's / bound read-write). bwrap's --die-with-parent ends
the sandbox, and every process in it, when `firewall run` ends, even by SIGKILL. Every
process inside runs under a system call filter (seccomp.py) that refuses new Unix sockets.

bwrap's own stderr is a pipe read here, so that when it cannot make the sandbox its words
end up inside our one-line error instead of on a line before it; the command gets the
user's stderr back (a dup'ed descriptor, put back as 2 by `sh` before `env` runs it).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from firewall.run import seccomp
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
# bwrap's words when user.max_user_namespaces is 0 (or used up, or nesting is too deep): ENOSPC.
NO_USERNS_LIMIT_FIX = (
    "raise the limit (`sysctl -w user.max_user_namespaces=15000`; in a container, its host or "
    "runtime sets it) or run without isolation: `firewall run --no-isolate -- ...`"
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
    said: threading.Thread | None = None  # passes what bwrap writes later on to our stderr

    def wait_said(self) -> None:
        """After bwrap ended: let the last of its words reach our stderr."""
        if self.said is not None:
            self.said.join(timeout=1.0)


def find_bwrap() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxError(
            "bubblewrap (bwrap) is not installed; `firewall run` isolates the agent with it: "
            "install it (`apt-get install bubblewrap`, `dnf install bubblewrap`) "
            "or run without isolation: `firewall run --no-isolate -- ...`"
        )
    return found


@dataclass(frozen=True)
class Fds:
    """The descriptors bwrap gets besides stdio, by their numbers in its process."""

    info: int
    block: int
    seccomp: int | None = None  # the system call filter's program (None: no filter)
    agent_stderr: int | None = None  # the user's stderr, made the command's fd 2 again (0-9)


def bwrap_argv(bwrap: str, env_program: str, mounts: Mounts, fds: Fds, command: list[str]) -> list[str]:
    # --cap-drop ALL: bwrap keeps every capability for a caller that is root, with which the agent
    # could unmount the tmpfs over the state folder (and set no_new_privs keeps them from coming back).
    argv = [
        bwrap,
        *NAMESPACES,
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--info-fd",
        str(fds.info),
        "--block-fd",
        str(fds.block),
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
    if fds.seccomp is not None:
        argv += ["--seccomp", str(fds.seccomp)]
    argv.append("--")
    if fds.agent_stderr is not None:
        # dash reads one digit after >& only: the caller hands a descriptor below 10.
        fd = fds.agent_stderr
        argv += ["/bin/sh", "-c", f'exec 2>&{fd} {fd}>&-; exec "$@"', "sh"]
    return [*argv, env_program, DEFAULT_SIGNALS, "--", *command]


def start(
    mounts: Mounts, port: int, command: list[str], env: dict[str, str], *, syscall_filter: bool = True
) -> Started:
    """Start `command` in a sandbox whose 127.0.0.1:`port` comes back here as a listening socket.
    `syscall_filter=False` leaves out the seccomp filter (tests of the other layers use it)."""
    bwrap, env_program = find_bwrap(), _env_program()
    try:
        program = seccomp.program() if syscall_filter else None
    except seccomp.UnsupportedArch as exc:
        raise SandboxError(str(exc)) from exc
    opened: list[int] = []

    def pipe() -> tuple[int, int]:
        ends = os.pipe()
        opened.extend(ends)
        return ends

    try:
        saved, slot = _stderr_slot()  # first: below 10 if any number there is free
        if saved is not None:
            opened.append(saved)
        info_read, info_write = pipe()
        block_read, block_write = pipe()
        said_read, said_write = pipe()
        passed = [info_write, block_read]
        filter_fd = None
        if program is not None:
            filter_fd, filter_write = pipe()
            os.write(filter_write, program)  # a few hundred bytes: well within a pipe's buffer
            os.close(filter_write)
            opened.remove(filter_write)
            passed.append(filter_fd)
        if saved is not None:
            passed.append(slot)
        # Without a stderr to give back (closed), bwrap writes wherever stderr is.
        bwrap_stderr = said_write if saved is not None else None
        fds = Fds(info_write, block_read, filter_fd, slot if saved is not None else None)

        def prepare() -> None:  # in the child, between fork and exec
            _shield()
            if saved is not None and saved != slot:
                os.dup2(saved, slot)

        try:
            process = subprocess.Popen(
                bwrap_argv(bwrap, env_program, mounts, fds, command),
                env={**env, MARKER: "1"},
                pass_fds=tuple(passed),
                stderr=bwrap_stderr,
                preexec_fn=prepare,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start {bwrap}: {exc.strerror}") from exc
        for fd in (*passed, said_write):
            _close(fd, opened)
        try:
            return _set_up(process, info_read, block_write, said_read, port, bwrap)
        except BaseException:
            if process.poll() is None:
                process.kill()
                process.wait()
            raise
    finally:
        for fd in opened:
            os.close(fd)


def _close(fd: int, opened: list[int]) -> None:
    if fd in opened:
        opened.remove(fd)
        os.close(fd)


def _stderr_slot() -> tuple[int | None, int]:
    """A copy of our stderr, and the number below 10 it gets in bwrap's process (`sh` reads one
    digit after `>&`): its own number if it is that low, else 9 (then 3-9 are all open here and
    none is ours, so Popen can keep 9 and the child puts the copy there before exec; this
    process's own descriptor 9 is left alone). (None, 0) without a stderr."""
    try:
        saved = os.dup(2)
    except OSError:
        return None, 0
    if saved < 10:
        return saved, saved
    return saved, 9


def _set_up(
    process: subprocess.Popen, info_read: int, block_write: int, said_read: int, port: int, bwrap: str
) -> Started:
    sandbox_pid, said = _sandbox_pid(process, info_read, said_read)
    if sandbox_pid is None:
        code = process.wait()
        said += _read_all(said_read)
        words = " ".join(said.decode(errors="replace").split())
        if (why := refusal(bwrap)) is not None:
            raise SandboxError(why)
        raise SandboxError(
            f"the sandbox did not start ({words or f'bwrap exited {code}'}); "
            "run without isolation with `firewall run --no-isolate -- ...`"
        )
    if said:
        os.write(2, said)
    forward = _forward(said_read)
    try:
        listener = listen_in(sandbox_pid, port)
    except NamespaceError as exc:
        raise SandboxError(f"{exc}; run without isolation with `firewall run --no-isolate -- ...`") from exc
    os.write(block_write, b"go")  # bwrap starts the command now
    agent_pid = _first_child(sandbox_pid, process)
    return Started(process, listener, agent_pid or sandbox_pid, forward)


def _read_all(fd: int) -> bytes:
    """What is left in a pipe whose writers are gone (bwrap exited), bounded in time."""
    data = b""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and select.select([fd], [], [], 0.1)[0]:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


def _forward(said_read: int) -> threading.Thread:
    """Pass what bwrap writes from now on (it rarely does) on to our stderr, until it ends."""
    copy = os.dup(said_read)  # the caller closes its own

    def run() -> None:
        try:
            while chunk := os.read(copy, 4096):
                os.write(2, chunk)
        except OSError:
            pass
        finally:
            os.close(copy)

    thread = threading.Thread(target=run, name="firewall-bwrap-stderr", daemon=True)
    thread.start()
    return thread


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


def _sandbox_pid(process: subprocess.Popen, info_read: int, said_read: int) -> tuple[int | None, bytes]:
    """The pid (as seen here) of the sandbox's first process, from bwrap's --info-fd, or None if
    bwrap ended before it made one; and what bwrap said on stderr meanwhile."""
    data, said = b"", b""
    deadline = time.monotonic() + START_TIMEOUT
    watching = [info_read, said_read]
    while time.monotonic() < deadline:
        ready = select.select(watching, [], [], 0.05)[0]
        if said_read in ready:
            chunk = os.read(said_read, 4096)
            said += chunk
            if not chunk:
                watching.remove(said_read)
        if info_read in ready:
            chunk = os.read(info_read, 4096)
            if not chunk:
                break
            data += chunk
            try:
                return int(json.loads(data)["child-pid"]), said
            except (ValueError, KeyError):
                continue  # not all of it yet
        elif not ready and process.poll() is not None:
            break
    return None, said


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
    fix = NO_USERNS_LIMIT_FIX if "ENOSPC" in said or "No space left" in said else NO_USERNS_FIX
    return f"this system refuses the user namespaces the agent's sandbox needs ({said}); {fix}"
