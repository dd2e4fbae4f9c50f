"""Waiting for the agent: in its sandbox, or as a plain child (`--no-isolate`).

Either way the agent dies with `firewall run`, and SIGINT, SIGTERM and SIGHUP sent to
`firewall run` are passed on to the agent itself. Standard library only (like sandbox.py
and relay.py), so the tests can drive the sandbox as a user without the project's packages.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess

from firewall.run import sandbox
from firewall.run.relay import Relay

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


def run_in(
    mounts: sandbox.Mounts, port: int, command: list[str], env: dict[str, str], *, syscall_filter: bool = True
) -> int:
    """Run `command` in a sandbox whose only way out is 127.0.0.1:`port`, relayed to the same
    address out here; its exit code."""
    started = sandbox.start(mounts, port, command, env, syscall_filter=syscall_filter)
    relay = Relay(started.listener, ("127.0.0.1", port))
    relay.start()
    try:
        return wait_forwarding(started.process, started.agent_pid)
    finally:
        relay.close()
        started.wait_said()


def die_with_parent() -> None:
    """In the child before exec: SIGKILL when `firewall run` dies (Linux; elsewhere nothing)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def wait_forwarding(process: subprocess.Popen, agent_pid: int) -> int:
    """Wait for `process`, passing the signals users stop an agent with on to `agent_pid`;
    its exit code, 128+N for a death by signal N (the shell's convention)."""
    try:
        pidfd = os.pidfd_open(agent_pid)  # signals reach this process, never one given its pid later
    except (OSError, AttributeError):
        pidfd = None

    def forward(signum, _frame):
        try:
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, signum)
            else:
                os.kill(agent_pid, signum)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        code = process.wait()
        return code if code >= 0 else 128 - code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pidfd is not None:
            os.close(pidfd)
