"""The audit writer's child process: `python -m firewall.audit.child DATABASE`.

Started by ProcessAuditWriter (firewall/audit/process_writer.py), which sends
batches of rows on stdin (the fields of records it has checked). Each batch
is answered on stdout with `got N` as soon as it is read (so the parent knows a
child that dies later died on this batch, not before it), goes in with
`insert_rows`, one transaction, and is answered with `ok N` once committed, or
`error N why` each time an attempt fails (it is tried again every second). It ends when its stdin does, after writing
everything it was sent.
"""

from __future__ import annotations

import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import BinaryIO

from firewall.audit.batching import RETRY_DELAY
from firewall.audit.frames import read_frames
from firewall.audit.record import FIELD_INDEX
from firewall.audit.writer import insert_rows
from firewall.state.db import connect

RECENT_ROWS = 100_000  # how far back a resent batch's last row is looked for
_IDENTITY = tuple(FIELD_INDEX[name] for name in ("request_id", "time", "decision", "reason", "duration_ms"))


class MalformedBatch(Exception):
    """A batch whose rows are not records' fields: a bug in the sender, never retried."""


def serve(path: Path, frames: BinaryIO, answers: BinaryIO) -> None:
    # The parent brought the schema up to date before it started the first child (ProcessAuditWriter),
    # so this process loads no migrations: only sqlite3, the record's fields and the chain's hashing.
    conn = connect(path, autocommit=True)
    try:
        for number, resend, rows in read_frames(frames):
            _answer(answers, f"got {number}")
            if any(type(row) is not tuple or len(row) != len(FIELD_INDEX) for row in rows):
                raise MalformedBatch(f"batch {number}: rows are not tuples of {len(FIELD_INDEX)} fields")
            if not (resend and rows and already_written(conn, rows[-1])):
                _insert_retrying(conn, path, number, rows, answers)
            _answer(answers, f"ok {number}")
    finally:
        conn.close()


def _insert_retrying(conn: sqlite3.Connection, path: Path, number: int, rows: list[tuple], answers: BinaryIO) -> None:
    while True:
        try:
            insert_rows(conn, rows)
            return
        except sqlite3.Error as exc:  # the database, not the rows: say so and try again
            message = " ".join(f"{path}: cannot write {len(rows)} audit rows: {exc}".split())
            _answer(answers, f"error {number} {message}")
            time.sleep(RETRY_DELAY)


def already_written(conn: sqlite3.Connection, row: tuple) -> bool:
    """Is `row` among the last RECENT_ROWS rows? Then the previous child committed its batch
    (a batch is one transaction) and died before it answered."""
    found = conn.execute(
        "SELECT 1 FROM audit WHERE seq > (SELECT coalesce(max(seq), 0) FROM audit) - ? "
        "AND request_id = ? AND time = ? AND decision = ? AND reason = ? AND duration_ms = ?",
        [RECENT_ROWS, *(row[i] for i in _IDENTITY)],
    ).fetchone()
    return found is not None


def _answer(answers: BinaryIO, line: str) -> None:
    answers.write(line.encode("utf-8") + b"\n")
    answers.flush()


def main(argv: list[str]) -> int:
    # The proxy decides when this process ends, by closing its stdin: a Ctrl-C or SIGTERM sent
    # to the whole process group must not cut off the rows still on their way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if len(argv) != 1:
        print("usage: python -m firewall.audit.child DATABASE", file=sys.stderr)
        return 2
    serve(Path(argv[0]), sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
