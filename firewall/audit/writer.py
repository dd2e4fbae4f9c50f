"""The audit writer: cheap submits from the proxy's event loop, batched inserts in a thread.

`submit` only appends to a deque. A background thread takes up to
`batch_size` records at a time and writes each batch in one IMMEDIATE
transaction on its own connection, reading the chain's head inside that
transaction, so several writers (several proxies) can share one database
and still build a single unbroken chain.

The thread shares the proxy's GIL, so it is written to take the GIL as few
times as it can: after each batch it waits `interval` seconds unless a full
batch is already queued (a busy proxy gets a few large transactions a second,
not one per row), and it inserts a batch with a handful of multi-row INSERTs. `executemany` would release and
retake the GIL around every row's step, and each retake waits on the event
loop: that handoff, not SQLite, was most of what the audit log cost a busy
proxy (bench/audit_log.py, docs/performance.md).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from firewall.audit.chain import head, row_hash
from firewall.audit.record import COLUMNS, AuditRecord
from firewall.audit.txn import transaction
from firewall.state.db import open_database

_ROW = f"({', '.join('?' * (len(COLUMNS) + 2))})"
_INSERT = f"INSERT INTO audit ({', '.join(COLUMNS)}, prev_hash, hash) VALUES "
# Rows per INSERT: powers of two, so a batch of any size takes at most one statement of each
# (six cached statements, never one per batch size). 32 rows x 25 columns = 800 bound
# variables, under SQLite's lowest limit (999, before 3.32).
_CHUNKS = (32, 16, 8, 4, 2, 1)
_INSERTS = {rows: _INSERT + ", ".join([_ROW] * rows) for rows in _CHUNKS}
RETRY_DELAY = 1.0  # seconds between attempts at a batch that failed to write


class AuditWriteError(Exception):
    """Audit records could not be written; the message says where and how many."""


@dataclass(frozen=True)
class _FlushMark:
    """Queued by `flush`; set once every record queued before it has been handled."""

    done: threading.Event = field(default_factory=threading.Event)


class AuditWriter:
    """Appends AuditRecords to the `audit` table of the database at `path`.

    Use one per process. `submit` may be called from the event loop; `flush`
    and `close` block, so call them at shutdown or via `asyncio.to_thread`.
    """

    def __init__(self, path: Path, *, batch_size: int = 500, interval: float = 0.25) -> None:
        if batch_size < 1:
            raise ValueError(f"AuditWriter batch_size must be at least 1, got {batch_size}")
        if interval <= 0:
            raise ValueError(f"AuditWriter interval must be positive, got {interval}")
        open_database(path).conn.close()  # schema up to date; a bad path fails here, in the caller
        self.path = path
        self._batch_size = batch_size
        self._interval = interval
        self._conn = _connect(path)
        self._queue: deque[AuditRecord | _FlushMark] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._closed = False
        self._written = 0
        self._unwritten = 0  # records given up on when a write failed during close
        self._error: AuditWriteError | None = None
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    @property
    def written(self) -> int:
        """Rows this writer has committed so far."""
        return self._written

    @property
    def error(self) -> AuditWriteError | None:
        """The last write failure, while the batch it hit is still unwritten."""
        return self._error

    def submit(self, record: AuditRecord) -> None:
        """Queue `record` for writing. Never blocks; safe from any thread."""
        if self._closed:
            raise AuditWriteError(f"{self.path}: audit writer is closed; record {record.request_id} not written")
        self._queue.append(record)

    def flush(self, timeout: float = 10.0) -> None:
        """Block until every record submitted before this call is committed.

        Raises AuditWriteError when that does not happen within `timeout` seconds.
        """
        if self._closed:  # close() already wrote everything, or said what it could not
            return
        mark = _FlushMark()
        self._queue.append(mark)
        self._wake.set()
        if not mark.done.wait(timeout):
            cause = f": {self._error}" if self._error else ""
            raise AuditWriteError(f"{self.path}: audit records not written within {timeout}s{cause}")
        if self._unwritten:
            raise AuditWriteError(f"{self.path}: {self._unwritten} audit records not written: {self._error}")

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AuditWriteError(f"{self.path}: audit writer did not finish within {timeout}s: {self._error}")
        self._conn.close()
        if self._unwritten:
            raise AuditWriteError(f"{self.path}: {self._unwritten} audit records not written: {self._error}")

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            records, marks = self._take()
            if records:
                self._write(records)
            for mark in marks:
                mark.done.set()
            if self._stopping and not self._queue:
                return
            if len(self._queue) < self._batch_size:  # a full batch is written at once
                self._wake.wait(self._interval)  # flush() and close() cut the wait short
                self._wake.clear()

    def _take(self) -> tuple[list[AuditRecord], list[_FlushMark]]:
        records: list[AuditRecord] = []
        marks: list[_FlushMark] = []
        while len(records) < self._batch_size:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            if isinstance(item, _FlushMark):
                marks.append(item)
            else:
                records.append(item)
        return records, marks

    def _write(self, records: list[AuditRecord]) -> None:
        """Insert `records`, retrying until it works or the writer is closing."""
        while True:
            try:
                self._insert(records)
            except Exception as exc:  # noqa: BLE001 - the thread must survive to retry and report
                self._error = AuditWriteError(f"{self.path}: cannot write {len(records)} audit rows: {exc}")
                if self._stopping:
                    self._give_up(len(records))
                    return
                self._wake.wait(RETRY_DELAY)
                self._wake.clear()
                continue
            self._error = None
            self._written += len(records)
            return

    def _insert(self, records: list[AuditRecord]) -> None:
        with transaction(self._conn, immediate=True):
            link = head(self._conn)
            seq, prev = link.seq, link.hash
            # Hash a chunk, insert it, hash the next: the GIL is let go (during the INSERT)
            # after every chunk, never held for a whole batch's hashing.
            for chunk in _chunked(records):
                params: list[object] = []
                for record in chunk:
                    seq += 1
                    values = record.values(seq)
                    digest = row_hash(prev, values)
                    params += values
                    params += (prev, digest)
                    prev = digest
                self._conn.execute(_INSERTS[len(chunk)], params)

    def _give_up(self, count: int) -> None:
        # Closing with a write failing: count what is lost, release every flush waiting on it.
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _FlushMark):
                item.done.set()
            else:
                count += 1
        self._unwritten += count


def _chunked(records: list[AuditRecord]) -> Iterator[list[AuditRecord]]:
    """`records` in order, as consecutive slices whose sizes are in _CHUNKS, largest first."""
    first = 0
    for size in _CHUNKS:
        while len(records) - first >= size:
            yield records[first : first + size]
            first += size


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn
