"""The audit writer's child process: `python -m firewall.audit.child DATABASE`.

Started by ProcessAuditWriter (firewall/audit/process_writer.py), which
sends batches of records on stdin; each is written with an AuditWriter, and
answered on stdout with `ok N` once committed (`error N why` each time a
write attempt fails meanwhile; the writer keeps retrying). It ends when its
stdin does, after writing everything it was sent.
"""

from __future__ import annotations

import signal
import sqlite3
import sys
from pathlib import Path
from typing import BinaryIO

from firewall.audit.batching import RETRY_DELAY, AuditWriteError
from firewall.audit.process_writer import read_frames
from firewall.audit.record import AuditRecord
from firewall.audit.writer import AuditWriter

RECENT_ROWS = 100_000  # how far back a resent batch's last row is looked for


def serve(path: Path, frames: BinaryIO, answers: BinaryIO) -> None:
    with AuditWriter(path) as writer:
        for number, resend, rows in read_frames(frames):
            records = [AuditRecord(*row) for row in rows]
            if not (resend and records and already_written(path, records[-1])):
                for record in records:
                    writer.submit(record)
                while True:
                    try:
                        writer.flush(timeout=RETRY_DELAY + 0.5)
                        break
                    except AuditWriteError as exc:
                        _answer(answers, f"error {number} {' '.join(str(exc).split())}")
            _answer(answers, f"ok {number}")


def already_written(path: Path, record: AuditRecord) -> bool:
    """Is `record` among the last RECENT_ROWS rows? Then the previous child committed its batch
    (a batch is one transaction) and died before it answered."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT 1 FROM audit WHERE seq > (SELECT coalesce(max(seq), 0) FROM audit) - ? "
            "AND request_id = ? AND time = ? AND decision = ? AND reason = ? AND duration_ms = ?",
            [RECENT_ROWS, record.request_id, record.time, record.decision, record.reason, record.duration_ms],
        ).fetchone()
    finally:
        conn.close()
    return row is not None


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
