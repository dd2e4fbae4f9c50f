"""A proxy of several worker processes: `firewall proxy start --workers N` (N > 1).

One mitmproxy process is one event loop, on one core. The supervisor (this module, no
mitmproxy in it) starts N proxy processes (`python -m firewall.proxy --worker I ...`) that
each listen on the same port with SO_REUSEPORT (listening.py); the supervisor holds the port
with a bound, not listening socket, so it stays theirs while a worker is replaced.

What the workers share, and how:
- limits and budgets: the count service the supervisor serves (counts.py), exact across workers;
- the audit log: one hash chain; each worker's audit child appends in an IMMEDIATE transaction
  that reads the chain's head inside it (audit/writer.py), so writers never fork the chain; the
  supervisor signs the head once, after every worker stopped;
- approvals: rows in the state database, each held by the worker (pid) that holds its request;
- OAuth refreshes: a file lock per login and a re-read of the vault under it (oauth.py).

The supervisor's state file (`run/proxy.json`) names it (pid) and its workers; `proxy stop`
signals it, and it passes the grace on to every worker (stopping.py), waits for them, sums
what they cut or lost, and exits last. Each worker has a state file of its own
(`proxy.worker0.json`, ...); their problems are merged into the supervisor's.

A worker that dies is replaced (its connections in flight are lost, as with a proxy that
dies; the others serve on). More than RESTART_LIMIT deaths within RESTART_WINDOW seconds, or
one before it listened at the start, and the whole proxy stops: it fails closed, not half up.
Workers die with the supervisor (PR_SET_PDEATHSIG): nothing serves without the counts.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

from firewall.proxy.counts import CountService
from firewall.proxy.listening import port_in_use, reuse_port_socket
from firewall.proxy.settings import ProxySettings
from firewall.proxy.state_file import StateFile, read_info, worker_state_file
from firewall.proxy.stopping import (
    STOP_TIMEOUT,
    read_json,
    request_stop,
    sign_audit_head,
    stop_report,
    take_stop_request,
)
from firewall.vault import handoff

log = logging.getLogger("firewall.proxy")
START_TIMEOUT = 20.0  # seconds a worker has to listen
RESTART_LIMIT = 5  # worker deaths within RESTART_WINDOW past which the proxy stops (fails closed)
RESTART_WINDOW = 60.0
POLL = 0.2  # seconds between looks at the workers


class SupervisorError(Exception):
    """The proxy of several workers could not start, or stopped because its workers kept dying."""


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process
    state_file: Path
    listening: bool = False
    started: float = field(default_factory=time.monotonic)
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    tasks: list[asyncio.Task] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def why(self) -> str:
        """What it said last on stderr, or how it ended."""
        lines = [line.removeprefix("error: ") for line in self.stderr if line.strip()]
        code = self.process.returncode
        ended = f"exit code {code}" if code is not None and code >= 0 else f"killed by signal {-(code or 0)}"
        return f"{lines[-1]} ({ended})" if lines else ended


class Supervisor:
    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings
        self.state = StateFile(settings.state_file)
        self.workers: list[_Worker] = []
        self.deaths: deque[float] = deque()
        self.stopping = asyncio.Event()
        self.port = 0
        self.started = time.time()
        self.counts_socket: Path | None = None
        self._merged: dict[str, str] = {}

    async def run(self) -> None:
        settings = self.settings
        if port_in_use(settings.port):
            raise SupervisorError(f"port {settings.port} on 127.0.0.1 is in use; pick another with --port")
        try:
            holder = reuse_port_socket(settings.port, listen=False)
        except OSError as exc:
            raise SupervisorError(f"cannot listen on 127.0.0.1:{settings.port}: {exc.strerror}") from None
        self.port = holder.getsockname()[1]
        counts = CountService(settings.home.run_dir)
        await counts.start()
        self.counts_socket = counts.path
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        failure: str | None = None
        report: dict = {}
        try:
            for index in range(settings.workers):
                self.workers.append(await self._spawn(index))
            await self._wait_listening()
            self._publish()
            log.info("listening on 127.0.0.1:%s with %d workers", self.port, len(self.workers))
            failure = await self._watch()
        finally:
            report = await self._stop_workers(take_stop_request(settings.state_file))
            if settings.audit and self.state.listened:  # the chain's head, once every worker stopped
                sign_audit_head(settings.home)
            await counts.close()
            holder.close()
            if report.get("cut") or report.get("lost"):
                self.state.stopped(report)
            else:
                self.state.remove()
        if failure:
            raise SupervisorError(failure)

    def _on_signal(self) -> None:
        if self.stopping.is_set():  # a second signal: every worker cuts what is in flight now
            for worker in self.workers:
                _signal(worker, signal.SIGTERM)
            return
        self.stopping.set()

    # ---- the workers ----

    async def _spawn(self, index: int) -> _Worker:
        settings = self.settings
        state_file = worker_state_file(settings.state_file, index)
        state_file.unlink(missing_ok=True)
        # The supervisor's own settings, but for where it listens and what a worker is told alone.
        worker_settings = replace(
            settings,
            port=self.port,
            state_file=state_file,
            listen_fd=None,
            workers=1,
            worker=index,
            counts_socket=self.counts_socket,
            budgets_file=_budgets_file(settings.state_file) if index == 0 else None,
        )
        env, passphrase = handoff.for_child(dict(os.environ))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "firewall.proxy",
            *worker_settings.to_argv(),
            stdin=asyncio.subprocess.PIPE if passphrase else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,  # a Ctrl-C reaches the supervisor alone, which stops them in order
            preexec_fn=functools.partial(_die_with_parent, os.getpid()),
        )
        if passphrase and process.stdin is not None:
            process.stdin.write(passphrase)
            process.stdin.close()
        worker = _Worker(index, process, state_file)
        worker.tasks.append(asyncio.get_running_loop().create_task(_read_stderr(worker)))
        return worker

    async def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not all(worker.listening for worker in self.workers):
            for worker in self.workers:
                if worker.process.returncode is not None:
                    await asyncio.sleep(0.05)  # its last words on stderr
                    raise SupervisorError(f"worker {worker.index}: {worker.why()}")
                worker.listening = worker.listening or _listening(worker)
            if self.stopping.is_set():
                return
            if time.monotonic() > deadline:
                raise SupervisorError(f"the workers did not start listening within {START_TIMEOUT:.0f}s")
            await asyncio.sleep(0.02)

    async def _watch(self) -> str | None:
        """Until a stop is asked for: replace workers that die, merge their problems. The reason
        the proxy must stop (fail closed), or None at a stop that was asked for."""
        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), POLL)
            except TimeoutError:
                pass
            if self.stopping.is_set():
                return None
            for position, worker in enumerate(self.workers):
                if worker.process.returncode is not None:
                    reason = await self._died(worker)
                    if reason:
                        return reason
                    self.workers[position] = await self._spawn(worker.index)
                    self.state.problem(f"worker {worker.index}", f"died ({worker.why()}); being replaced")
                elif not worker.listening and _listening(worker):
                    worker.listening = True
                    log.info("worker %d listens again (pid %d)", worker.index, worker.pid)
                    self.state.problem(f"worker {worker.index}", None)
                    self._publish()
                elif not worker.listening and time.monotonic() - worker.started > START_TIMEOUT:
                    worker.process.kill()  # seen dead on the next look, and counted
            self._merge_problems()
        return None

    async def _died(self, worker: _Worker) -> str | None:
        await asyncio.gather(*worker.tasks, return_exceptions=True)
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and now - self.deaths[0] > RESTART_WINDOW:
            self.deaths.popleft()
        log.error("worker %d (pid %d) died: %s", worker.index, worker.pid, worker.why())
        worker.state_file.unlink(missing_ok=True)
        if len(self.deaths) > RESTART_LIMIT:
            return (
                f"{len(self.deaths)} workers died within {RESTART_WINDOW:.0f}s (the last: {worker.why()}); "
                "the proxy stopped rather than serve half up; see the proxy log"
            )
        return None

    async def _stop_workers(self, grace: float) -> dict:
        live = [worker for worker in self.workers if worker.process.returncode is None]
        for worker in live:
            request_stop(worker.state_file, grace)
            _signal(worker, signal.SIGTERM)
        report: dict = {}
        for worker in live:
            try:
                await asyncio.wait_for(worker.process.wait(), grace + STOP_TIMEOUT)
            except TimeoutError:
                log.error("worker %d (pid %d) did not stop in time; killed", worker.index, worker.pid)
                _signal(worker, signal.SIGKILL)
                await worker.process.wait()
            await asyncio.gather(*worker.tasks, return_exceptions=True)
            stopped = stop_report(worker.state_file, worker.pid)
            log.info("worker %d (pid %d) stopped: %s audit rows written", worker.index, worker.pid, stopped.get("rows"))
            _add_up(report, stopped)
        for worker in self.workers:
            worker.state_file.unlink(missing_ok=True)
        return report

    # ---- the state file ----

    def _publish(self) -> None:
        settings = self.settings
        self.state.listening(
            {
                "pid": os.getpid(),
                "port": self.port,
                "started": self.started,
                "pinned_policy": settings.pinned_policy is not None,
                "limits_storage": settings.limits_storage,
                "upstream_ca": str(settings.upstream_ca.resolve()) if settings.upstream_ca else None,
                "workers": [worker.pid for worker in self.workers],
            }
        )

    def _merge_problems(self) -> None:
        """The workers' problems, said once each (every worker usually has the same one)."""
        merged: dict[str, str] = {}
        for worker in self.workers:
            for problem in (read_json(worker.state_file) or {}).get("problems", ()):
                merged.setdefault(str(problem["what"]), str(problem["message"]))
        for what in self._merged.keys() - merged.keys():
            self.state.problem(what, None)
        for what, message in merged.items():
            if self._merged.get(what) != message:
                self.state.problem(what, message)
        self._merged = merged


def _budgets_file(state_file: Path) -> Path:
    from firewall.proxy.budget_snapshot import snapshot_path

    return snapshot_path(state_file)


def _listening(worker: _Worker) -> bool:
    info = read_info(worker.state_file)
    return info is not None and info.pid == worker.pid


def _signal(worker: _Worker, sig: int) -> None:
    try:
        worker.process.send_signal(sig)
    except ProcessLookupError:
        pass


def _add_up(report: dict, stopped: dict) -> None:
    """Sum what the workers cut and lost at their stop (`proxy stop` prints it)."""
    for key in ("cut", "lost"):
        value = stopped.get(key)
        if isinstance(value, int) and isinstance(report.get(key, 0), int):
            report[key] = report.get(key, 0) + value
        elif value:
            report[key] = value  # "an unknown number of"
    if stopped.get("lost_cause"):
        report.setdefault("lost_cause", stopped["lost_cause"])


async def _read_stderr(worker: _Worker) -> None:
    """Keep the last lines a worker wrote on stderr (its own errors; its log goes to the log file)."""
    stream = worker.process.stderr
    if stream is None:
        return
    while line := await stream.readline():
        worker.stderr.append(line.decode(errors="replace").rstrip())


_PR_SET_PDEATHSIG = 1
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the child after fork
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_parent(parent: int) -> None:  # pragma: no cover - runs in the child between fork and exec
    """The worker gets SIGTERM (and drains) when the supervisor dies, whatever killed it."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


async def supervise(settings: ProxySettings) -> None:
    await Supervisor(settings).run()
