"""A running proxy's state file (`run/proxy.json` for the shared proxy): where it listens, and
what is wrong with it right now, for `firewall run`, `proxy status` and `proxy stop`.

Written once the proxy listens, then again whenever a problem starts or ends (the policy
in force cannot be replaced, the vault cannot be read, the limits store does not answer),
always whole and atomically. Read (`read_info`) by those, and by a supervisor of workers
(supervisor.py) to see a worker listen.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from firewall.proxy.stopping import read_json
from firewall.state.home import write_private_file
from firewall.state.pids import exists

# The file is padded with spaces to a whole number of these: on a full disk, where a new file
# cannot be written, the proxy can still rewrite this one in place (`proxy status` and
# `proxy stop` then say what is lost). JSON readers skip the trailing spaces.
BLOCK = 4096


def worker_state_file(state_file: Path, index: int) -> Path:
    """Where worker `index` of the proxy whose supervisor writes `state_file` describes itself."""
    return state_file.with_name(f"{state_file.stem}.worker{index}.json")


@dataclass(frozen=True)
class ProxyInfo:
    """A running proxy as its state file describes it."""

    pid: int
    port: int
    started: float
    pinned_policy: bool
    limits_storage: str
    state_file: Path
    problems: tuple[tuple[str, str], ...] = ()  # (what fails, what happened and what the proxy does meanwhile)
    upstream_ca: str | None = None  # the extra upstream CA it trusts (--upstream-ca), as an absolute path
    workers: tuple[int, ...] = ()  # its worker processes (supervisor.py; `pid` is their supervisor)
    policy: dict | None = None  # the policy version in force: {"version": N, "sha256": ...}; None: none yet

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def read_info(state_file: Path) -> ProxyInfo | None:
    """The proxy a state file describes, if it is alive; a stale file is removed."""
    data = read_json(state_file)
    if data is None:
        return None
    info = ProxyInfo(
        pid=int(data["pid"]),
        port=int(data["port"]),
        started=float(data["started"]),
        pinned_policy=bool(data.get("pinned_policy")),
        limits_storage=str(data.get("limits_storage", "memory://")),
        state_file=state_file,
        problems=tuple((str(p["what"]), str(p["message"])) for p in data.get("problems", ())),
        upstream_ca=data.get("upstream_ca"),
        workers=tuple(int(pid) for pid in data.get("workers", ())),
        policy=data.get("policy") or _workers_policy(state_file, data),
    )
    if not exists(info.pid):
        state_file.unlink(missing_ok=True)
        return None
    return info


def _workers_policy(state_file: Path, data: dict) -> dict | None:
    """The policy version a supervisor's workers have loaded: they load it, not the supervisor,
    and worker 0's file says which (every worker loads the same stored version)."""
    if not data.get("workers"):
        return None
    worker = read_json(worker_state_file(state_file, 0)) or {}
    policy = worker.get("policy")
    return policy if isinstance(policy, dict) else None


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._base: dict | None = None  # pid, port, ...: set once the proxy listens
        self._problems: dict[str, str] = {}  # what failed -> what happened and what the proxy does meanwhile
        self._notes: dict[str, object] = {}  # what changes while it runs: the policy version in force
        self._lock = threading.Lock()
        self._closed = False

    @property
    def listened(self) -> bool:
        return self._base is not None

    def listening(self, base: dict) -> None:
        with self._lock:
            self._base = base
            self._write()

    def problem(self, what: str, message: str | None) -> None:
        """Record that `what` fails (with `message`), or no longer does (None). Any thread."""
        with self._lock:
            if message is None:
                self._problems.pop(what, None)
            else:
                self._problems[what] = message
            if self._base is not None:
                self._write()

    def note(self, key: str, value: object) -> None:
        """Record `key` (e.g. the policy in force) and rewrite the file if the proxy listens. Any thread."""
        with self._lock:
            self._notes[key] = value
            if self._base is not None:
                self._write()

    def remove(self) -> None:
        with self._lock:
            self._closed = True
            self.path.unlink(missing_ok=True)

    def stopped(self, report: dict) -> None:
        """The last write: what the stop cut or lost, for `proxy stop` to print (it removes the file)."""
        with self._lock:
            if self._base is not None and not self._closed:
                self._write(stopped=report)
            self._closed = True

    def _write(self, **extra: object) -> None:
        if self._closed:
            return
        problems = [{"what": what, "message": message} for what, message in self._problems.items()]
        data = json.dumps({**self._base, **self._notes, "problems": problems, **extra}).encode()
        padded = data.ljust(-(-len(data) // BLOCK) * BLOCK)
        try:
            write_private_file(self.path, padded)
        except OSError:  # a full disk: rewrite the file in place, within the blocks it has
            _write_in_place(self.path, padded.rstrip())


def _write_in_place(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        size = os.fstat(fd).st_size
        if len(data) > size:
            raise OSError(f"{path}: no room to rewrite it in place")
        os.pwrite(fd, data.ljust(size), 0)
    finally:
        os.close(fd)
