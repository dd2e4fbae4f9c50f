"""Whether a process recorded in the state folder (a proxy, a run) is still alive."""

from __future__ import annotations

import os


def exists(pid: int) -> bool:
    """A process with this pid exists (ours or another user's), a zombie included."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def zombie(pid: int) -> bool:
    """The process has exited and waits for its parent to collect it."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """The process exists and has not exited."""
    return exists(pid) and not zombie(pid)
