"""The audit writer that hashes and inserts rows itself, on a thread of the calling process.

Each batch goes in one IMMEDIATE transaction on the writer's own connection,
reading the chain's head inside that transaction, so several writers (several
proxies) can share one database and still build a single unbroken chain. A
batch that fails to write is kept and retried every second.

A proxy does not use this class: its ProcessAuditWriter
(firewall/audit/process_writer.py) has a child process call `insert_rows`,
because a thread here shares the caller's GIL, and every time it takes the
GIL back the caller's event loop waits. For the same reason a batch goes in
as a handful of multi-row INSERTs: `executemany` lets go of the GIL and takes
it back around every row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from firewall.audit.batching import RETRY_DELAY, AuditWriteError, BatchingWriter
from firewall.audit.chain import head, row_hash
from firewall.audit.record import COLUMNS, AuditRecord, row_values
from firewall.state.db import connect, transaction

_ROW = f"({', '.join('?' * (len(COLUMNS) + 2))})"
_INSERT = f"INSERT INTO audit ({', '.join(COLUMNS)}, prev_hash, hash) VALUES "
# Rows per INSERT: powers of two, so a batch of any size takes at most one statement of each
# (six cached statements, never one per batch size). 32 rows x 31 columns = 992 bound
# variables, under SQLite's lowest limit (999, before 3.32).
_CHUNKS = (32, 16, 8, 4, 2, 1)
_INSERTS = {rows: _INSERT + ", ".join([_ROW] * rows) for rows in _CHUNKS}


class AuditWriter(BatchingWriter):
    """Appends AuditRecords to the `audit` table of the database at `path`.

    `submit` may be called from an event loop; `flush` and `close` block, so
    call them at shutdown or via `asyncio.to_thread`.
    """

    def __init__(self, path: Path, *, batch_size: int = 500, interval: float = 0.25) -> None:
        from firewall.state.db import open_database  # not at the top: the child process (child.py) needs none of it

        super().__init__(path, batch_size=batch_size, interval=interval, thread_name="audit-writer")
        open_database(path).conn.close()  # schema up to date; a bad path fails here, in the caller
        self._conn = connect(path, autocommit=True)
        self._start()

    def _release(self) -> None:
        self._conn.close()

    def _write_batch(self, records: list[AuditRecord]) -> None:
        """Insert `records`, retrying until it works or the writer is closing."""
        rows = [record.as_tuple() for record in records]
        while True:
            try:
                insert_rows(self._conn, rows)
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


def insert_rows(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    """Append `rows` (`AuditRecord.as_tuple()`s of checked records) to the chain, in one transaction."""
    with transaction(conn, immediate=True):
        link = head(conn)
        seq, prev = link.seq, link.hash
        # Hash a chunk, insert it, hash the next: the GIL is let go (during the INSERT)
        # after every chunk, never held for a whole batch's hashing.
        for chunk in _chunked(rows):
            params: list[object] = []
            for fields in chunk:
                seq += 1
                values = row_values(seq, fields)
                digest = row_hash(prev, values)
                params += values
                params += (prev, digest)
                prev = digest
            conn.execute(_INSERTS[len(chunk)], params)


def _chunked(rows: list[tuple[object, ...]]) -> Iterator[list[tuple[object, ...]]]:
    """`rows` in order, as consecutive slices whose sizes are in _CHUNKS, largest first."""
    first = 0
    for size in _CHUNKS:
        while len(rows) - first >= size:
            yield rows[first : first + size]
            first += size
