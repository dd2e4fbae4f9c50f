"""Where the CPU of `proxy start --workers N` goes: per process of the proxy's tree, per request.

    .venv/bin/python bench/workers_cpu.py [--workers 1 2] [--connections 64] [--per-connection 40]
                                          [--rounds 3] [--clients 2] [--idle 5]

A count of work, not of time (a loaded machine disturbs it little): for each configuration
(one state folder per worker count, the scorecard's 100-rule policy, a credential and a limit
on every request, the audit log on; as bench/workers.py), each round sends the same load twice,
`--per-connection` requests and twice as many on every connection, and reads every process of
the proxy's tree from /proc before and after (user + system time; the main thread apart from
the others). The difference of the two loads is the CPU of `connections x per-connection`
requests on kept-alive connections, without the connections' set-up, the warm-up or the
clients' start (bench/workers.py's figure includes them). `--idle` seconds with no load give
each process's CPU per second when nothing happens (pollers, timers).

Printed per configuration: the median over rounds of each process's CPU per request (the
supervisor, each worker's event loop thread and its other threads, each worker's audit child)
and of the whole tree, and the idle CPU per second.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import proxy_overhead as po  # noqa: E402
from bench.scorecard import load, prepare_home  # noqa: E402
from bench.workers import _client  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _stat_seconds(path: Path) -> float:
    fields = path.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")


def _role(pid: int, parent_role: str | None) -> str:
    argv = _cmdline(pid)
    if "firewall.audit.child" in argv:
        return f"{parent_role} audit child" if parent_role else "audit child"
    if "--worker" in argv:
        return f"worker {argv[argv.index('--worker') + 1]}"
    return "proxy" if parent_role is None else f"{parent_role} child"


def tree_cpu(pid: int, parent_role: str | None = None, into: dict[str, float] | None = None) -> dict[str, float]:
    """CPU seconds so far of every process under `pid` (and itself), by role; a process's main
    thread apart from its other threads."""
    into = {} if into is None else into
    try:
        role = _role(pid, parent_role)
        if parent_role is None and po._children(pid) and "--worker" not in _cmdline(pid):
            workers = [c for c in po._children(pid) if "--worker" in _cmdline(c)]
            role = "supervisor" if workers else role
        for task in Path(f"/proc/{pid}/task").iterdir():
            key = f"{role} main thread" if task.name == str(pid) else f"{role} other threads"
            into[key] = into.get(key, 0.0) + _stat_seconds(task / "stat")
        for child in po._children(pid):
            tree_cpu(child, role, into)
    except (FileNotFoundError, ProcessLookupError):
        pass  # a thread or process that just ended
    return into


def _diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before.get(key, 0.0) for key in after}


def run_load(pool, proxy: dict, upstream_port: int, conns: int, per: int, clients: int) -> dict[str, float]:
    shares = [conns // clients + (i < conns % clients) for i in range(clients)]
    before = tree_cpu(proxy["pid"])
    start_at = time.time() + 0.3
    futures = [
        pool.submit(_client, proxy["port"], proxy["ca"], proxy["auth"], upstream_port, n, per, start_at)
        for n in shares
        if n
    ]
    for future in futures:
        future.result()
    return _diff(tree_cpu(proxy["pid"]), before)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--per-connection", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of no load to measure idle CPU over")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from firewall.proxy.ca import agent_ca_path
    from firewall.state import agents
    from firewall.state.db import open_database
    from firewall.state.home import open_home

    tmp = Path(tempfile.mkdtemp(prefix="fw-workers-cpu-"))
    homes: list[po.Firewall] = []
    upstream = None
    try:
        ca_file, upstream, upstream_port = po.start_upstream(tmp)
        proxies = {}
        for workers in args.workers:
            fw = prepare_home(tmp / f"w{workers}", upstream_port)
            homes.append(fw)
            fw.run("proxy", "start", "--port", "0", "--upstream-ca", str(ca_file), "--workers", str(workers))
            status = json.loads(fw.run("proxy", "status", "--json").stdout)
            home = open_home(fw.home)
            db = open_database(home.database)
            token = agents.mint_token(db, "bench")
            db.close()
            proxies[workers] = {
                "pid": status["pid"],
                "port": status["port"],
                "ca": str(agent_ca_path(home)),
                "auth": f"bench:{token}",
            }
        per, conns = args.per_connection, args.connections
        print(
            f"workers CPU bench: {args.rounds} rounds of c{conns} x ({per} then {2 * per}) requests, "
            f"{args.clients} client processes; {os.cpu_count()} cores; {load()} at start",
            flush=True,
        )
        per_request: dict[int, list[dict[str, float]]] = {n: [] for n in proxies}
        idle: dict[int, dict[str, float]] = {}
        with ProcessPoolExecutor(max_workers=args.clients) as pool:
            for proxy in proxies.values():  # warm: leaf certificates, upstream sessions, first imports
                run_load(pool, proxy, upstream_port, conns, 2, args.clients)
            for n, proxy in proxies.items():
                before = tree_cpu(proxy["pid"])
                time.sleep(args.idle)
                idle[n] = {k: v / args.idle for k, v in _diff(tree_cpu(proxy["pid"]), before).items()}
            for round_no in range(args.rounds):
                order = list(proxies) if round_no % 2 == 0 else list(proxies)[::-1]
                print(f"round {round_no + 1} ({load()})", flush=True)
                for n in order:
                    small = run_load(pool, proxies[n], upstream_port, conns, per, args.clients)
                    large = run_load(pool, proxies[n], upstream_port, conns, 2 * per, args.clients)
                    extra = {k: (large.get(k, 0.0) - small.get(k, 0.0)) / (conns * per) for k in large | small}
                    per_request[n].append(extra)
                    print(f"  {n} worker(s): tree {sum(extra.values()) * 1e6:7.0f} us/request", flush=True)
        report(per_request, idle)
    finally:
        for fw in homes:
            subprocess.run([po.PYTHON, "-m", "firewall", "proxy", "stop"], env=fw.env, capture_output=True)
        if upstream is not None:
            upstream.terminate()
            upstream.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(per_request: dict[int, list[dict[str, float]]], idle: dict[int, dict[str, float]]) -> None:
    med = statistics.median
    print(f"\n{load()} at the end; medians over rounds; us of CPU per request (idle: ms per second)")
    for n, rounds in per_request.items():
        print(f"{n} worker(s)")
        keys = sorted({k for r in rounds for k in r})
        for key in keys:
            used = med(r.get(key, 0.0) for r in rounds) * 1e6
            print(f"  {key:36} {used:8.0f} us   idle {idle[n].get(key, 0) * 1e3:6.1f} ms/s")
        used = med(sum(r.values()) for r in rounds) * 1e6
        print(f"  {'whole tree':36} {used:8.0f} us   idle {sum(idle[n].values()) * 1e3:6.1f} ms/s")


if __name__ == "__main__":
    sys.exit(main())
