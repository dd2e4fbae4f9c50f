"""Benchmark the audit writer alone: sustained rows per second into a fresh database.

    .venv/bin/python bench/audit_log.py [--rows 100000] [--batch-size 500]

`bench_writer` is importable (`from bench.audit_log import bench_writer`) for
benchmarks that measure the writer alongside the proxy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from firewall.audit.record import AuditRecord
from firewall.audit.writer import AuditWriter
from firewall.state.db import open_database

TARGET_ROWS_PER_SECOND = 20_000


@dataclass(frozen=True)
class WriterBench:
    rows: int
    seconds: float  # from the first submit until close() returned with every row committed
    submit_seconds: float  # of that, time spent inside submit() by the caller

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds

    @property
    def submit_microseconds(self) -> float:
        return self.submit_seconds / self.rows * 1e6


def sample_records(count: int, start: float) -> list[AuditRecord]:
    """Records shaped like a proxy's: a few agents and hosts, some blocks, some errors."""
    hosts = ("api.openai.com", "api.github.com", "pypi.org", "evil.example.net")
    decisions = ("allow", "allow", "allow", "block", "would_block", "error")
    return [
        AuditRecord(
            time=start + i * 0.001,
            request_id=f"req-{i:08d}",
            agent=("coder", "reviewer", None)[i % 3],
            method=("GET", "POST")[i % 2],
            scheme="https",
            host=hosts[i % len(hosts)],
            port=443,
            path=f"/v1/items/{i}",
            query="page=2&token=***" if i % 5 == 0 else "",
            decision=decisions[i % len(decisions)],
            reason="rule" if i % 7 else "default_no_rule",
            rule=f"policies/agent.fw:{i % 40}" if i % 7 else None,
            policy_sha256="3f" * 32,
            credentials="openai" if i % 4 == 0 else "",
            upstream_status=200 if i % 6 < 3 else None,
            duration_ms=12.5 + i % 100,
            bytes_out=256 + i % 1000,
            bytes_in=4096 + i % 10000,
            approval_id=None,
            scrubbed=i % 2,
            detail="upstream timed out" if i % 6 == 5 else None,
        )
        for i in range(count)
    ]


def bench_writer(path: Path, rows: int = 100_000, batch_size: int = 500) -> WriterBench:
    """Submit `rows` prebuilt records as fast as possible and wait until all are committed."""
    records = sample_records(rows, start=time.time())
    writer = AuditWriter(path, batch_size=batch_size)
    submit_seconds = 0.0
    started = time.perf_counter()
    for first in range(0, rows, 1000):
        began = time.perf_counter()
        for record in records[first : first + 1000]:
            writer.submit(record)
        submit_seconds += time.perf_counter() - began
    writer.close()
    elapsed = time.perf_counter() - started
    db = open_database(path)
    stored = db["audit"].count
    db.conn.close()
    if stored != rows:
        raise RuntimeError(f"{path}: expected {rows} audit rows after close, found {stored}")
    return WriterBench(rows=rows, seconds=elapsed, submit_seconds=submit_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sustained rows/s of the audit writer alone.")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        result = bench_writer(Path(folder) / "firewall.db", args.rows, args.batch_size)
    print(f"audit writer: {result.rows} rows in {result.seconds:.2f} s = {result.rows_per_second:,.0f} rows/s")
    print(f"submit(): {result.submit_microseconds:.2f} µs per record on the caller's thread")
    print(f"target: {TARGET_ROWS_PER_SECOND:,} rows/s ({'met' if result.rows_per_second >= TARGET_ROWS_PER_SECOND else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
