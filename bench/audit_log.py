"""Benchmark the audit log: the writer alone, and what logging costs the proxy's throughput.

    .venv/bin/python bench/audit_log.py [--rows 100000] [--batch-size 500]
                                        [--rounds 15] [--conc-requests 250] [--only writer|proxy]

1. writer: sustained rows per second into a fresh database of `ProcessAuditWriter` (what
   the proxy uses: hashing and SQLite in a child process) and of `AuditWriter` (what
   that child runs, in this process).
2. proxy: two `firewall proxy start` proxies, each in its own temporary FIREWALL_HOME with
   the same 100-rule policy, credential and limit as bench/proxy_overhead.py; one writes the
   audit log (`on`), the other was started with the benchmark knob `--audit off` (its
   Auditor builds every record and hands it to a writer that only counts it). The same
   bounded load (16 kept-alive HTTPS tunnels, N GETs each; proxy_overhead's client and
   upstream) runs against both, interleaved round by round with the order alternating;
   figures are medians over rounds. The cost of logging is judged on the median of the
   per-round ratios on/off (each `on` round against the `off` round next to it, so a change
   in the machine's load between rounds cancels out; target: under 5%); the ratio of the
   median throughputs is printed beside it. Proxy CPU includes the audit writer's child
   process. The rows written by the `on` proxy are counted against the requests sent.

`bench_writer` is importable (`from bench.audit_log import bench_writer`) for
benchmarks that measure a writer alongside the proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench.proxy_overhead` importable
    sys.path.insert(0, str(ROOT))

from firewall.audit.process_writer import ProcessAuditWriter
from firewall.audit.record import AuditRecord
from firewall.audit.writer import AuditWriter
from firewall.state.db import open_database

TARGET_ROWS_PER_SECOND = 20_000
TARGET_LOGGING_COST = 0.05  # throughput with the audit log on at least 95% of it off


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


def bench_writer(
    path: Path,
    rows: int = 100_000,
    batch_size: int = 500,
    kind: type[AuditWriter] | type[ProcessAuditWriter] = ProcessAuditWriter,
) -> WriterBench:
    """Submit `rows` prebuilt records as fast as possible and wait until all are committed."""
    records = sample_records(rows, start=time.time())
    writer = kind(path, batch_size=batch_size)
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


def bench_proxy(rounds: int = 15, per_connection: int = 250, warmup: int = 3) -> dict[str, list]:
    """Throughput of the firewall proxy with the audit log on and off (see the module's doc);
    returns {"on": [Result, ...], "off": [...], "rows": [written, expected]}."""
    import trustme

    from bench import proxy_overhead as po
    from firewall.proxy.ca import agent_ca_path
    from firewall.state import agents
    from firewall.state.home import open_home

    tmp = Path(tempfile.mkdtemp(prefix="fw-bench-audit-"))
    children: list[subprocess.Popen] = []
    homes = {"on": po.Firewall(tmp / "on"), "off": po.Firewall(tmp / "off")}
    try:
        ca = trustme.CA()
        ca_file, cert_file = tmp / "ca.pem", tmp / "upstream.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert_file))
        upstream, upstream_port = po._spawn_port([po.PYTHON, po.__file__, "_upstream", str(cert_file)])
        children.append(upstream)
        policy_text, _ = po.generate_policy(upstream_port)
        (tmp / "bench.policy").write_text(policy_text)
        targets: dict[str, po.Target] = {}
        for name, fw in homes.items():
            fw.run("init")
            fw.run("secrets", "add", "bench", "--provider", "generic", "--stdin", input=po.SECRET_VALUE + "\n")
            fw.run("policy", "apply", str(tmp / "bench.policy"))
            fw.run("proxy", "start", "--port", "0", "--upstream-ca", str(ca_file), "--audit", name)
            status = po.json.loads(fw.run("proxy", "status", "--json").stdout)
            home = open_home(fw.home)
            db = open_database(home.database)
            token = agents.mint_token(db, "bench")
            db.conn.close()
            context = ssl.create_default_context(cafile=str(agent_ca_path(home)))
            targets[name] = po.Target(name, "127.0.0.1", status["port"], context, f"bench:{token}", pid=status["pid"])
        results: dict[str, list] = {"on": [], "off": []}
        print(
            f"proxy: {rounds} rounds of {po.CONCURRENCY}x{per_connection} requests per configuration; "
            f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start",
            flush=True,
        )
        for round_no in range(rounds):
            for name in ("on", "off") if round_no % 2 == 0 else ("off", "on"):
                result = asyncio.run(po._load(targets[name], upstream_port, po.CONCURRENCY, per_connection, warmup))
                results[name].append(result)
                print(
                    f"  round {round_no + 1} audit {name:3} {result.rps:6.0f} req/s  p50 {result.pct(0.5):6.2f} ms"
                    f"  p99 {result.pct(0.99):6.2f} ms  proxy CPU {result.cpu_us:5.0f} us/req",
                    flush=True,
                )
        print(f"  load average at the end: {os.getloadavg()[0]:.2f}")
        homes["on"].run("proxy", "stop")
        db = open_database(open_home(homes["on"].home).database)
        written = db.execute("SELECT count(*) FROM audit WHERE agent = 'bench'").fetchone()[0]
        db.conn.close()
        expected = sum(r.requests + po.CONCURRENCY * warmup for r in results["on"])
        results["rows"] = [written, expected]
        return results
    finally:
        for child in children:
            child.terminate()
            child.wait(timeout=10)
        for fw in homes.values():
            if fw.home.exists():
                subprocess.run([po.PYTHON, "-m", "firewall", "proxy", "stop"], env=fw.env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _report_proxy(results: dict[str, list]) -> None:
    med = statistics.median
    row = {
        name: {
            "rps": med(r.rps for r in results[name]),
            "p50": med(r.pct(0.5) for r in results[name]),
            "p99": med(r.pct(0.99) for r in results[name]),
            "cpu": med(r.cpu_us for r in results[name]),
        }
        for name in ("off", "on")
    }
    print(f"{'audit':6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>11}   (median over rounds)")
    for name in ("off", "on"):
        r = row[name]
        print(f"{name:6} {r['rps']:7.0f} {r['p50']:7.2f} {r['p99']:7.2f} {r['cpu']:11.0f}")
    paired = sorted(on.rps / off.rps for on, off in zip(results["on"], results["off"], strict=True))
    quartiles = statistics.quantiles(paired, n=4)
    print(
        f"throughput on/off, per round: median {med(paired):.3f}, quartiles {quartiles[0]:.3f} to "
        f"{quartiles[2]:.3f}, range {paired[0]:.3f} to {paired[-1]:.3f}"
    )
    print(f"throughput on/off, ratio of the median throughputs: {row['on']['rps'] / row['off']['rps']:.3f}")
    print(
        f"proxy CPU per request (with the writer's child process) on/off: "
        f"{row['on']['cpu'] / row['off']['cpu']:.3f}, {row['on']['cpu'] - row['off']['cpu']:+.0f} us"
    )
    written, expected = results["rows"]
    print(
        f"audit rows written by the `on` proxy: {written} (requests sent: {expected})"
        f"{'' if written == expected else '  MISMATCH'}"
    )
    cost = 1 - med(paired)
    print(
        f"target: logging costs < {TARGET_LOGGING_COST:.0%} of throughput (per-round median): {cost:.1%} "
        f"({'met' if cost < TARGET_LOGGING_COST else 'NOT met'})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The audit writer alone, and the audit log's cost to the proxy.")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=15, help="proxy: rounds per configuration")
    parser.add_argument("--conc-requests", type=int, default=250, help="proxy: requests per tunnel (x16), per round")
    parser.add_argument("--only", choices=["writer", "proxy"], help="run one part only")
    args = parser.parse_args(argv)
    if args.only != "proxy":
        for kind in (ProcessAuditWriter, AuditWriter):
            with tempfile.TemporaryDirectory() as folder:
                result = bench_writer(Path(folder) / "firewall.db", args.rows, args.batch_size, kind)
            print(
                f"{kind.__name__}: {result.rows} rows in {result.seconds:.2f} s = "
                f"{result.rows_per_second:,.0f} rows/s; submit() {result.submit_microseconds:.2f} µs per record"
                f" on the caller's thread; target {TARGET_ROWS_PER_SECOND:,} rows/s "
                f"({'met' if result.rows_per_second >= TARGET_ROWS_PER_SECOND else 'NOT met'})",
                flush=True,
            )
    if args.only != "writer":
        print()
        _report_proxy(bench_proxy(args.rounds, args.conc_requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
