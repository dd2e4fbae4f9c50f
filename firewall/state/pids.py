"""Whether a process recorded in the state folder (a proxy, a run) is still alive.

A run's lease is its pid and that process's start time (clock ticks since boot, field 22
of /proc/PID/stat), so a token dies with its run and a later process given the same pid
does not keep it alive.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def exists(pid: int) -> bool:
    """A process with this pid exists (ours or another user's), a zombie included."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stat(pid: int) -> tuple[bytes, int] | None:
    """(state letter, start time) of process `pid`, or None if it does not exist."""
    try:
        stat = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return fields[0], int(fields[19])


def pid_alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie counts as gone)."""
    if not exists(pid):
        return False
    found = _stat(pid)
    return found is None or found[0] not in (b"Z", b"X")


@dataclass(frozen=True)
class Lease:
    pid: int
    started: int | None  # None where there is no /proc: then only the pid is checked


def own_lease() -> Lease:
    pid = os.getpid()
    found = _stat(pid)
    return Lease(pid, found[1] if found else None)


def held(lease: Lease) -> bool:
    """Whether the process that took the lease still runs (a zombie counts as gone)."""
    if lease.started is None:
        return exists(lease.pid)
    found = _stat(lease.pid)
    return found is not None and found[1] == lease.started and found[0] not in (b"Z", b"X")
