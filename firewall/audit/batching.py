"""What every audit writer shares: a queue the event loop appends to, and a thread that
hands what has queued to `_write_batch` a batch at a time.

`submit` only appends to a deque, so it never blocks the caller. The thread
takes up to `batch_size` records, has them written, and then waits `interval`
seconds unless a full batch or a `flush` is waiting: a busy proxy gets a few
large batches a second, not a transaction per row. A subclass says how a
batch is written (`_write_batch`), which must either write it (and count it in
`_written`) or give up on it (`_give_up`), retrying in between as it sees fit.

What waits in memory is bounded (docs/audit.md, "When rows cannot be written"): `unavailable()`
says when more than `max_rows` rows wait, or a batch has waited more than `max_seconds` (a
full disk, a write lock held by another process); the proxy then refuses new requests
(firewall/proxy/addons/audit_gate.py). Past twice `max_rows` while writes fail, `submit` drops
the record and counts it as lost, so memory stays bounded whatever the proxy is told to do.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from firewall.audit.record import AuditRecord

RETRY_DELAY = 1.0  # seconds between attempts at a batch that failed to write
MAX_ROWS = 10_000  # rows waiting in memory past which the proxy refuses new requests
MAX_SECONDS = 5.0  # seconds a batch may wait to be committed before the proxy refuses new requests


class AuditWriteError(Exception):
    """Audit records could not be written; the message says where and how many."""


@dataclass(frozen=True)
class FlushMark:
    """Queued by `flush`; set once every record queued before it has been handled."""

    done: threading.Event = field(default_factory=threading.Event)


class BatchingWriter:
    """Queue, flush and close; subclasses write the batches (see the module's doc)."""

    def __init__(
        self,
        path: Path,
        *,
        batch_size: int,
        interval: float,
        thread_name: str,
        max_rows: int = MAX_ROWS,
        max_seconds: float = MAX_SECONDS,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"{type(self).__name__} batch_size must be at least 1, got {batch_size}")
        if interval <= 0:
            raise ValueError(f"{type(self).__name__} interval must be positive, got {interval}")
        self.path = path
        self._batch_size = batch_size
        self._interval = interval
        self._queue: deque[AuditRecord | FlushMark] = deque()
        self._wake = threading.Event()
        self._flushes = 0  # flush marks queued and not yet handled: no pause while there are any
        self._flushes_lock = threading.Lock()
        self._stopping = False
        self._closed = False
        self._written = 0
        self._unwritten = 0  # records given up on
        self._error: AuditWriteError | None = None
        self._lost_cause: AuditWriteError | None = None  # why records were given up on (kept after writes work again)
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self._in_batch = 0  # records of the batch being written
        self._waiting_since: float | None = None  # monotonic start of the batch being written, until it is
        self._dropped = 0  # records refused by submit past the hard bound (2 x max_rows)
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def _start(self) -> None:
        """Start the thread; a subclass calls it once it is ready to write."""
        self._thread.start()

    @property
    def written(self) -> int:
        """Rows committed so far."""
        return self._written

    @property
    def unwritten(self) -> int:
        """Records given up on or dropped (lost) so far."""
        return self._unwritten + self._dropped

    @property
    def lost_cause(self) -> str | None:
        """Why records were lost (the failure at the time), if any were."""
        return str(self._lost_cause) if self._lost_cause else None

    @property
    def pending(self) -> int:
        """Records waiting in memory: queued, or in the batch being written."""
        return len(self._queue) + self._in_batch

    def unavailable(self, now: float | None = None) -> str | None:
        """Why no more rows should be taken in now (too many wait, or for too long), or None."""
        pending = self.pending
        if pending >= self.max_rows:
            return f"{pending} audit rows wait to be written (the bound is {self.max_rows}){self._cause()}"
        since = self._waiting_since
        waited = (time.monotonic() if now is None else now) - since if since is not None else 0.0
        if waited >= self.max_seconds:
            bound = f"the bound is {self.max_seconds:g} s"
            return f"audit rows have waited {waited:.1f} s to be written ({bound}){self._cause()}"
        return None

    def _cause(self) -> str:
        return f": {self._error}" if self._error else ""

    @property
    def error(self) -> AuditWriteError | None:
        """The last write failure, while the batch it hit is still unwritten."""
        return self._error

    def submit(self, record: AuditRecord) -> None:
        """Queue `record` for writing. Never blocks; safe from any thread."""
        if self._closed:
            raise AuditWriteError(f"{self.path}: audit writer is closed; record {record.request_id} not written")
        if (
            self._error is not None and len(self._queue) >= 2 * self.max_rows
        ):  # writes fail: bound memory, count the loss
            if self._lost_cause is None:
                self._lost_cause = AuditWriteError(
                    f"{2 * self.max_rows} rows were already waiting in memory{self._cause()}"
                )
            self._dropped += 1
            return
        self._queue.append(record)

    def flush(self, timeout: float = 10.0) -> None:
        """Block until every record submitted before this call is committed.

        Raises AuditWriteError when that does not happen within `timeout` seconds,
        or when records were given up on.
        """
        if self._closed:  # close() already wrote everything, or said what it could not
            return
        mark = FlushMark()
        with self._flushes_lock:
            self._flushes += 1
        self._queue.append(mark)
        self._wake.set()
        if not mark.done.wait(timeout):
            cause = f": {self._error}" if self._error else ""
            raise AuditWriteError(f"{self.path}: audit records not written within {timeout}s{cause}")
        if self.unwritten:
            raise self._lost()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon()
            self._thread.join(5)
        if self._thread.is_alive():
            raise AuditWriteError(f"{self.path}: audit writer did not finish within {timeout}s: {self._error}")
        self._release()
        if self.unwritten:
            raise self._lost()

    def _lost(self) -> AuditWriteError:
        """How many records were given up on, and why (the failure at the time, not the latest state)."""
        return AuditWriteError(
            f"{self.path}: {self.unwritten} audit records not written: {self._lost_cause or 'cause unknown'}"
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- for subclasses ----

    def _write_batch(self, records: list[AuditRecord]) -> None:
        raise NotImplementedError

    def _abandon(self) -> None:
        """close() timed out while a batch was being written: make the write stop if possible."""

    def _release(self) -> None:
        """Free what the writer holds, once the thread has ended."""

    def _give_up(self, count: int) -> None:
        """`count` records will not be written; when closing, nor will anything still queued."""
        if self._error is not None:
            self._lost_cause = self._error
        if self._stopping:
            while self._queue:
                item = self._queue.popleft()
                if isinstance(item, FlushMark):
                    self._handled(item)
                else:
                    count += 1
        self._unwritten += count

    # ---- the thread ----

    def _run(self) -> None:
        while True:
            records, marks = take_batch(self._queue, self._batch_size)
            if records:
                self._in_batch = len(records)
                self._waiting_since = self._waiting_since or time.monotonic()
                self._write_batch(records)
                self._in_batch = 0
                if self._error is None:  # written (or given up on): nothing waits on a failing write
                    self._waiting_since = None
            for mark in marks:
                self._handled(mark)
            if self._stopping and not self._queue:
                return
            if len(self._queue) < self._batch_size and not self._flushes:
                self._wake.wait(self._interval)  # flush() and close() cut the pause short
                self._wake.clear()

    def _handled(self, mark: FlushMark) -> None:
        with self._flushes_lock:
            self._flushes -= 1
        mark.done.set()


def take_batch(queue: deque[AuditRecord | FlushMark], size: int) -> tuple[list[AuditRecord], list[FlushMark]]:
    """Up to `size` records from the front of `queue`, and the flush marks among them."""
    records: list[AuditRecord] = []
    marks: list[FlushMark] = []
    while len(records) < size:
        try:
            item = queue.popleft()
        except IndexError:
            break
        if isinstance(item, FlushMark):
            marks.append(item)
        else:
            records.append(item)
    return records, marks
