"""The audit writer a proxy uses: hashing and SQLite in a child process of their own.

`submit` only appends to a queue, as with every writer (firewall/audit/batching.py).
The queue's thread sends each batch as one frame through a pipe to a child
process (`python -m firewall.audit.child DB`, firewall/audit/child.py, which
inserts it with `insert_rows`) and waits until the child answers that it is
committed.

Why a process: a writer thread shares the proxy's GIL, and every time it takes
the GIL back (after each SQLite call) the event loop waits for it. In its own
process the per-row work (hashing, SQLite) never holds up the event loop; the
proxy only turns each record into a tuple and writes one frame per batch
(bench/audit_log.py, docs/performance.md).

Nothing lost or doubled: a batch stays here until the child says it is
committed. If the child dies, a new one is started and the batch sent again,
marked as a resend, and the child skips it when its rows are already in (the
child died after the commit, before it answered). A batch that kills the
child three times is given up on, counted and reported, so one bad batch
cannot stop the log. Only a child that said it read the batch (`got N`) and
then died counts against it: children killed before they read it (a `kill`,
the OOM killer, a failed start) are replaced, with a growing pause, until one
reads it, however many that takes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from firewall.audit.batching import RETRY_DELAY, AuditWriteError, BatchingWriter
from firewall.audit.frames import encode_frame, read_frames  # noqa: F401  (read_frames: its home was here)
from firewall.audit.record import AuditRecord

log = logging.getLogger("firewall.audit")

ATTEMPTS_PER_BATCH = 3  # child processes that read a batch and died on it before it is given up on
MAX_PAUSE = 5.0  # seconds, at most, between a child's death and the next attempt


class ChildGone(Exception):
    """The child process exited, or answered something the protocol does not have."""


class ClosedWhileFailing(ChildGone):
    """close() was called while the child could not write: it was stopped, and what is left is lost."""


class ProcessAuditWriter(BatchingWriter):
    """Appends AuditRecords to the `audit` table at `path` through a child process.

    The interface of AuditWriter: `submit` may be called from the event loop;
    `flush` and `close` block, so call them at shutdown or in a thread.
    """

    def __init__(self, path: Path, *, batch_size: int = 500, interval: float = 0.25) -> None:
        # Not at the top: the child process imports this module and needs none of state.db's openers.
        from firewall.state.db import open_plain

        super().__init__(path, batch_size=batch_size, interval=interval, thread_name="audit-feeder")
        # The schema brought up to date here, once, before any child starts (the migrations, with
        # sqlite_utils, load only when one may be due); a bad path fails here, in the caller.
        open_plain(path).close()
        self._batches = 0
        self._child_read = False  # the child said it read the batch being sent
        self._abandoned = False  # close() stopped waiting: no more attempts
        self._logged_failure: str | None = None  # the write failure last logged, until writes work again
        self._child = self._spawn()
        self._start()

    @property
    def child_pid(self) -> int:
        return self._child.pid

    def _write_batch(self, records: list[AuditRecord]) -> None:
        """Hand `records` to the child and wait until they are committed, or given up on."""
        self._batches += 1
        rows = [record.as_tuple() for record in records]
        resend = False
        read_and_died = 0  # children that read this batch and died on it: only those count against it
        deaths = 0
        while True:
            try:
                self._exchange(encode_frame(self._batches, resend, rows))
            except ChildGone as exc:
                deaths += 1
                read_and_died += self._child_read
                when = "after reading" if self._child_read else "before reading"
                self._error = AuditWriteError(
                    f"{self.path}: audit writer process {when} batch {self._batches} ({len(rows)} rows): {exc}"
                )
                # Closing while writes fail, or close() gave up waiting (_abandon): no more attempts. A child
                # killed at a bad moment while closing is replaced like at any other time.
                if self._abandoned or isinstance(exc, ClosedWhileFailing):
                    break
                self._replace_child()  # for the next attempt, or for the batches after this one
                # A new child gets the full MAX_SECONDS: a dead child is not a full disk or a held lock
                # (the row bound still holds memory), so killed children do not shut the proxy's door.
                self._waiting_since = time.monotonic()
                if read_and_died >= ATTEMPTS_PER_BATCH:
                    break
                if deaths <= ATTEMPTS_PER_BATCH or deaths % 100 == 0:  # not a line per death when none can start
                    log.error("%s; sending its %d rows to a new one (death %d)", self._error, len(rows), deaths)
                self._wake.wait(min(RETRY_DELAY * (deaths - 1), MAX_PAUSE))  # at once the first time, then slower
                resend = True
                continue
            if self._logged_failure:
                log.warning("%s: audit rows are written again", self.path)
                self._logged_failure = None
            self._error = None
            self._written += len(records)
            return
        log.error(
            "%s: %d audit records given up on, after %d audit writer process(es) read them and died: %s",
            self.path,
            len(records),
            read_and_died,
            self._error,
        )
        self._give_up(len(records))

    def _exchange(self, frame: bytes) -> None:
        """Send one frame; read answers until the child says it is committed."""
        child = self._child
        self._child_read = False  # until it says `got N`
        try:
            child.stdin.write(frame)
            child.stdin.flush()
        except (OSError, ValueError) as exc:  # a broken pipe, or a pipe already closed
            raise ChildGone(f"it exited ({self._exit_status()}): {exc}") from None
        while True:
            line = child.stdout.readline().decode("utf-8", "replace").rstrip("\n")
            if not line:
                raise ChildGone(f"it exited ({self._exit_status()})")
            kind, _, rest = line.partition(" ")
            text = rest.partition(" ")[2]  # after the batch number
            if kind == "got":
                self._child_read = True
                continue
            if kind == "ok":
                return
            if kind != "error":
                child.kill()
                raise ChildGone(f"it answered {line!r}")
            self._error = AuditWriteError(text)  # the child keeps retrying; say why meanwhile
            if text != self._logged_failure:
                log.error("audit rows not written yet, trying again every %.0f s: %s", RETRY_DELAY, text)
                self._logged_failure = text
            if self._stopping:  # closing while writes fail: stop retrying, say what is lost
                child.kill()
                raise ClosedWhileFailing(f"closed while writes failed: {text}")

    def _abandon(self) -> None:
        self._abandoned = True
        self._child.kill()  # the thread's read ends; it gives up what is left

    def _release(self) -> None:
        _end(self._child)

    def _replace_child(self) -> None:
        _end(self._child)
        try:
            self._child = self._spawn()
        except OSError as exc:  # no new process now: the next attempt finds the old one gone, and tries again
            log.error("%s: cannot start an audit writer process: %s", self.path, exc)

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(
            child_command(self.path), stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, env=child_env()
        )

    def _exit_status(self) -> str:
        try:
            code = self._child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._child.kill()
            code = self._child.wait()
        return f"exit code {code}" if code >= 0 else f"killed by signal {-code}"


def child_command(path: Path) -> list[str]:
    """The child's command line. `-S`: no `site` (site-packages and their .pth files: 0.8 MiB the
    child, which needs only the standard library, would keep); `-P`: nothing from the current
    folder. The firewall package is found where this process found it (child_env)."""
    return [sys.executable, "-S", "-P", "-m", "firewall.audit.child", str(path)]


def child_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])  # the folder that holds the `firewall` package
    extra = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + extra if extra else "")}


def _end(child: subprocess.Popen) -> None:
    """Close the pipes to `child` (it sees the end of its input, writes what it has, exits) and reap it."""
    for stream in (child.stdin, child.stdout):
        try:
            stream.close()
        except OSError:
            pass  # a pipe to a child that is gone
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
