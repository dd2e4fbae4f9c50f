"""What waits in an audit writer's memory is bounded (firewall/audit/batching.py): `unavailable()`
says why past the row or the seconds bound, `submit` drops and counts records past twice the
row bound while writes fail. Control: a writer that writes a burst five times the bound says
nothing once it has written it, and drops nothing."""

from __future__ import annotations

import threading

import pytest

from firewall.audit.batching import AuditWriteError, BatchingWriter
from tests.audit.support import make_record


class HeldWriter(BatchingWriter):
    """Writes nothing until `release` is set: a full disk, a held lock."""

    def __init__(self, tmp_path, **bounds) -> None:
        super().__init__(tmp_path / "x.db", batch_size=5, interval=0.01, thread_name="held", **bounds)
        self.release = threading.Event()
        self.started = threading.Event()
        self._start()

    def _write_batch(self, records) -> None:
        self.started.set()
        if not self.release.is_set():
            self._error = AuditWriteError("database or disk is full")  # as the child reports it
        if not self.release.wait(10):
            self._give_up(len(records))
            return
        self._error = None
        self._written += len(records)


@pytest.fixture
def held(tmp_path):
    writer = HeldWriter(tmp_path, max_rows=20, max_seconds=5.0)
    yield writer
    writer.release.set()
    writer.close()


def test_a_writer_that_writes_is_available(tmp_path):
    writer = HeldWriter(tmp_path, max_rows=20, max_seconds=5.0)
    writer.release.set()
    for i in range(100):
        writer.submit(make_record(i))
    writer.flush()
    assert writer.unavailable() is None and writer.pending == 0
    writer.close()
    assert writer.written == 100 and writer.unwritten == 0


def test_past_the_row_bound_it_says_how_many_wait(held):
    for i in range(19):
        held.submit(make_record(i))
    assert held.unavailable() is None
    held.submit(make_record(19))
    assert "20 audit rows wait to be written (the bound is 20)" in held.unavailable()


def test_past_the_seconds_bound_it_says_how_long_a_batch_waited(held):
    held.submit(make_record(0))
    assert held.started.wait(5)
    assert held.unavailable() is None
    why = held.unavailable(now=held._waiting_since + 5.0)
    assert why is not None and "waited 5.0 s" in why


def test_past_twice_the_row_bound_records_are_dropped_and_counted(held):
    held.submit(make_record(0))
    assert held.started.wait(5)  # the first batch is stuck: writes fail
    for i in range(1, 60):
        held.submit(make_record(i))
    assert held.pending <= 40 + 5  # the queue's hard bound, plus the batch being written
    assert held.unwritten == 60 - held.pending
    held.release.set()
    with pytest.raises(AuditWriteError, match=r"audit records not written: .*rows were already waiting in memory"):
        held.close()
