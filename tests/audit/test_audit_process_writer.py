"""ProcessAuditWriter: the proxy's audit writer, with hashing and SQLite in a child process.

Nothing lost or doubled when the child dies; the child ends with its input and
ignores Ctrl-C. Failed writes, retried and reported, are tested for both
writers in test_audit_writer.py.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from firewall.audit.batching import AuditWriteError
from firewall.audit.chain import verify
from firewall.audit.process_writer import ProcessAuditWriter, encode_frame
from firewall.audit.record import AuditRecord
from firewall.state.db import open_database
from firewall.state.schema.audit import add_fields_column, add_usage_columns, create_audit_tables
from tests.audit.support import make_record

REPO = Path(__file__).parents[2]


def stored_ids_and_verdict(path: Path) -> tuple[list[str], str]:
    db = open_database(path)
    try:
        ids = [r[0] for r in db.execute("SELECT request_id FROM audit ORDER BY seq")]
        return ids, verify(db).describe()
    finally:
        db.conn.close()


def wait_for_exit(pid: int, timeout: float = 10.0) -> bool:
    """True once process `pid` has ended (gone, or a zombie no one has reaped yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def test_rows_go_in_whole_in_order_and_chained(db_path: Path) -> None:
    with ProcessAuditWriter(db_path) as writer:
        for i in range(1200):
            writer.submit(make_record(i))
        writer.flush(timeout=10)
        assert writer.written == 1200
        child = writer.child_pid
    ids, verdict = stored_ids_and_verdict(db_path)
    assert ids == [f"req-{i}" for i in range(1200)]
    assert verdict.startswith("audit log intact: 1200 rows;")
    assert wait_for_exit(child), "the child outlived close()"


def test_a_killed_child_loses_nothing_and_doubles_nothing(db_path: Path) -> None:
    with ProcessAuditWriter(db_path, batch_size=50) as writer:
        for round_no in range(4):
            for i in range(round_no * 300, (round_no + 1) * 300):
                writer.submit(make_record(i))
            if round_no % 2:
                writer.flush(timeout=10)
            os.kill(writer.child_pid, signal.SIGKILL)  # mid-batch in even rounds, idle in odd ones
        writer.flush(timeout=30)
        assert writer.written == 1200 and writer.error is None
    ids, verdict = stored_ids_and_verdict(db_path)
    assert ids == [f"req-{i}" for i in range(1200)]
    assert verdict.startswith("audit log intact: 1200 rows;")


def test_a_resent_batch_the_dead_child_had_committed_is_skipped(db_path: Path) -> None:
    """The child died after its commit, before its answer: the batch comes again, marked as a resend."""
    committed = [make_record(i).as_tuple() for i in range(3)]
    not_yet = [make_record(i).as_tuple() for i in range(3, 5)]
    child = subprocess.run(
        [sys.executable, "-m", "firewall.audit.child", str(db_path)],
        input=encode_frame(1, False, committed) + encode_frame(2, True, committed) + encode_frame(3, True, not_yet),
        capture_output=True,
        timeout=60,
        cwd=REPO,
    )
    assert child.returncode == 0, child.stderr.decode()
    assert child.stdout.decode().splitlines() == ["got 1", "ok 1", "got 2", "ok 2", "got 3", "ok 3"]
    ids, verdict = stored_ids_and_verdict(db_path)
    assert ids == [f"req-{i}" for i in range(5)]
    assert verdict.startswith("audit log intact: 5 rows;")


def test_close_stops_the_child_even_when_its_writes_fail(db_path: Path) -> None:
    """The failure itself is tested for both writers in test_audit_writer.py."""
    writer = ProcessAuditWriter(db_path)
    child = writer.child_pid
    db = open_database(db_path)
    db.execute("DROP TABLE audit")
    db.conn.close()
    writer.submit(make_record(0))
    time.sleep(0.5)  # the batch is with the child, failing
    with pytest.raises(AuditWriteError, match="1 audit records not written"):
        writer.close()
    assert wait_for_exit(child)


def test_a_failing_write_is_logged_once_and_its_end_too(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="firewall.audit"), ProcessAuditWriter(db_path) as writer:
        db = open_database(db_path)
        db.execute("DROP TABLE audit")
        db.execute("DROP TABLE audit_anchor")
        writer.submit(make_record(0))
        with pytest.raises(AuditWriteError):
            writer.flush(timeout=2.5)  # two or three failed attempts
        create_audit_tables(db)
        add_usage_columns(db)
        add_fields_column(db)
        db.conn.close()
        writer.flush(timeout=10)
    messages = [r.getMessage() for r in caplog.records]
    failures = [m for m in messages if "audit rows not written yet" in m]
    assert len(failures) == 1, messages
    assert failures[0].endswith(f"every 1 s: {db_path}: cannot write 1 audit rows: no such table: audit")
    assert any("audit rows are written again" in m for m in messages), messages


class Unreadable(AuditRecord):
    """A record whose fields the child cannot make an AuditRecord of: each attempt kills it."""

    def as_tuple(self) -> tuple[object, ...]:
        return ("not", "a", "record")


def test_a_batch_that_keeps_killing_the_child_is_given_up_and_the_log_goes_on(db_path: Path) -> None:
    with ProcessAuditWriter(db_path) as writer:
        good = make_record(0)
        writer.submit(Unreadable(*good.as_tuple()))
        with pytest.raises(AuditWriteError, match=r"1 audit records not written: .*exit code 1"):
            writer.flush(timeout=30)
        writer.submit(make_record(1))
        deadline = time.monotonic() + 10
        while writer.written < 1:
            assert time.monotonic() < deadline, "the record after the given-up one was not written"
            time.sleep(0.05)
        with pytest.raises(
            AuditWriteError, match=r"1 audit records not written: .*after reading batch 1 .*exit code 1"
        ):
            writer.close()  # close still says what was lost, and why (not the later success's "None")
    assert stored_ids_and_verdict(db_path)[0] == ["req-1"]


class DyingFirst(ProcessAuditWriter):
    """Its first `dying` child processes are killed before they read anything (as by `kill -9`
    or the OOM killer at a bad moment); the later ones are real."""

    def __init__(self, path: Path, dying: int, **kwargs) -> None:
        self.dying = dying
        super().__init__(path, **kwargs)

    def _spawn(self) -> subprocess.Popen:
        if self.dying <= 0:
            return super()._spawn()
        self.dying -= 1
        return subprocess.Popen(
            [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )


@pytest.mark.parametrize("dying", [3, 5])
def test_children_killed_before_they_read_a_batch_do_not_count_against_it(db_path: Path, dying: int) -> None:
    with DyingFirst(db_path, dying, batch_size=50) as writer:
        for i in range(120):
            writer.submit(make_record(i))
        writer.flush(timeout=60)
        assert (writer.written, writer.error, writer.dying) == (120, None, 0)
    ids, verdict = stored_ids_and_verdict(db_path)
    assert ids == [f"req-{i}" for i in range(120)]
    assert verdict.startswith("audit log intact: 120 rows;")


def test_the_child_ignores_ctrl_c_and_ends_with_its_input(db_path: Path) -> None:
    writer = ProcessAuditWriter(db_path)
    child = writer.child_pid
    time.sleep(1.0)  # let the child start and set its signal handling
    os.kill(child, signal.SIGINT)
    os.kill(child, signal.SIGTERM)
    writer.submit(make_record(0))
    writer.flush(timeout=10)
    assert writer.child_pid == child  # the same child wrote it
    writer.close()
    assert wait_for_exit(child)
    assert stored_ids_and_verdict(db_path)[0] == ["req-0"]


PARENT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from firewall.audit.process_writer import ProcessAuditWriter
    from tests.audit.support import make_record

    writer = ProcessAuditWriter(Path(sys.argv[1]))
    for i in range(10):
        writer.submit(make_record(i))
    writer.flush(timeout=30)
    print(writer.child_pid, flush=True)
    sys.stdin.read()  # until the test kills this process
    """
)


def test_the_child_ends_when_the_proxy_is_killed(db_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(repo=str(REPO)), str(db_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        child = int(parent.stdout.readline())
        parent.kill()
        parent.wait(timeout=10)
        assert wait_for_exit(child), "the child outlived the process that started it"
    finally:
        parent.kill()
        parent.wait(timeout=10)
    assert stored_ids_and_verdict(db_path)[0] == [f"req-{i}" for i in range(10)]


def test_closing_while_children_die_before_reading_still_writes_everything(db_path: Path) -> None:
    """A clean stop that meets a child killed at a bad moment replaces it instead of giving up."""
    writer = DyingFirst(db_path, 2, batch_size=50)
    for i in range(120):
        writer.submit(make_record(i))
    writer.close()  # no error: nothing was given up
    assert writer.written == 120
    assert stored_ids_and_verdict(db_path)[0] == [f"req-{i}" for i in range(120)]
