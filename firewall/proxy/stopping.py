"""Stopping a proxy process: `proxy stop --grace`, and what the stopped proxy reports.

A signal carries no value, so the grace goes in a file next to the proxy's state file
(`request_stop`) that the proxy reads when it is signalled (`take_stop_request`). What
the stop cut or lost comes back in the state file's last write (`stop_report`). A proxy
of several workers (firewall/proxy/supervisor.py) is stopped the same way: its
supervisor passes the grace on to every worker and sums their reports.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from firewall.state.home import Home, StateError, write_private_file
from firewall.state.pids import pid_alive

if TYPE_CHECKING:
    from firewall.proxy.state_file import ProxyInfo

STOP_TIMEOUT = 15.0  # seconds a proxy has to exit once its grace period (below) is over
DEFAULT_GRACE = 10.0  # seconds in-flight requests have to finish at a stop (firewall/proxy/addons/drain.py)
MAX_GRACE = 3600.0


def read_json(path: Path) -> dict | None:
    for _attempt in range(3):  # a file rewritten in place on a full disk (state_file.py) may be read half-written
        try:
            return json.loads(path.read_text())
        except OSError:
            return None
        except ValueError:
            time.sleep(0.01)
    return None


def stop_report(state_file: Path, pid: int) -> dict:
    """What the stopped proxy `pid` cut or lost (state_file.py `stopped`); the file is removed."""
    data = read_json(state_file)
    state_file.unlink(missing_ok=True)
    if data is None or data.get("pid") != pid:
        return {}
    return dict(data.get("stopped") or {})


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def stop_request_file(state_file: Path) -> Path:
    """Where `proxy stop --grace` leaves the grace for the proxy it signals (a signal carries no value)."""
    return state_file.with_name(f"{state_file.stem}.stop.json")


def request_stop(state_file: Path, grace: float) -> bool:
    """Leave `grace` for the proxy of `state_file` to read when it is signalled; False if it
    cannot be written (a full disk): the proxy then uses DEFAULT_GRACE."""
    try:
        write_private_file(stop_request_file(state_file), json.dumps({"grace": grace}).encode())
    except OSError:
        return False
    return True


def take_stop_request(state_file: Path) -> float:
    """The grace `proxy stop --grace` asked for (DEFAULT_GRACE if none); the request is used up."""
    path = stop_request_file(state_file)
    try:
        grace = float(json.loads(path.read_text())["grace"])
    except (OSError, ValueError, KeyError, TypeError):
        grace = DEFAULT_GRACE
    path.unlink(missing_ok=True)
    return min(max(grace, 0.0), MAX_GRACE)


def stop(info: ProxyInfo, timeout: float = STOP_TIMEOUT, grace: float | None = None) -> dict | None:
    """SIGTERM the proxy and wait until it is gone: it drains what is in flight for `grace`
    seconds (DEFAULT_GRACE if None), cuts the rest, and flushes its audit log last.

    None if it did not exit in time; else what it reported at its stop (`stop_report`: requests
    cut, audit rows lost), empty when there was nothing to report."""
    if grace is not None and not request_stop(info.state_file, grace) and grace != DEFAULT_GRACE:
        warn(
            f"could not pass --grace to the proxy (cannot write in {info.state_file.parent}); "
            f"it uses {DEFAULT_GRACE:g}s"
        )
        grace = DEFAULT_GRACE
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        info.state_file.unlink(missing_ok=True)
        stop_request_file(info.state_file).unlink(missing_ok=True)
        return {}
    deadline = time.monotonic() + timeout + (DEFAULT_GRACE if grace is None else grace)
    while time.monotonic() < deadline:
        # A supervisor exits after its workers (supervisor.py); a worker it lost track of is waited for too.
        if not pid_alive(info.pid) and not any(pid_alive(pid) for pid in info.workers):
            return stop_report(info.state_file, info.pid)
        time.sleep(0.02)
    return None


def sign_audit_head(home: Home) -> None:
    """Sign the audit chain's head once every row is written (docs/audit.md, checkpoints): the
    last thing a proxy does at its stop (a proxy of several workers: its supervisor, once)."""
    import logging
    import sqlite3

    from firewall.audit.checkpoints import CheckpointError, checkpoint_database

    log = logging.getLogger("firewall.proxy")
    try:
        signed = checkpoint_database(home.database, home.audit_key, home.checkpoints, time.time())
    except (OSError, sqlite3.Error, CheckpointError, StateError) as exc:
        log.error("could not write the audit checkpoint: %s", exc)
    else:
        log.info("audit checkpoint: row %d, hash %s", signed.seq, signed.hash[:12])
