"""One proxy process against two: `firewall proxy start --workers 1` vs `--workers 2`.

    .venv/bin/python bench/workers.py [--rounds 5] [--per-connection 40] [--clients 2]

Both proxies run at once, each in its own temporary state folder with the scorecard's
100-rule policy (a credential injected into every request, a rate limit counted on every
request: in the count service for the two workers, firewall/proxy/counts.py, and the audit
log). Per round, interleaved (the order alternates): 16 and 64 kept-alive HTTPS tunnels,
opened and warmed before the clock, `--per-connection` requests each, spread over
`--clients` client processes (one Python client process alone can be the bottleneck).

Printed: requests/s, p50, p99 and the CPU per request of the proxy's whole process tree
(supervisor, workers, audit writers), per round with the load average, then the medians and
the ratio two workers / one. The client and the upstream run on the same machine: on two
cores they take CPU the workers would use (docs/performance.md says what that means).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import ssl
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

MODES = (("c16", 16), ("c64", 64))


def _client(port: int, cafile: str, auth: str, upstream_port: int, conns: int, per: int, start_at: float):
    """One client process's share: (requests, seconds, latencies)."""
    target = po.Target("fw", "127.0.0.1", port, ssl.create_default_context(cafile=cafile), auth)

    async def run() -> po.Result:
        return await po._load(target, upstream_port, conns, per, warmup=2)

    delay = start_at - time.time()  # every client process starts its clock together
    if delay > 0:
        time.sleep(delay)
    result = asyncio.run(run())
    return result.requests, result.seconds, result.latencies


def measure(pool, proxy: dict, upstream_port: int, conns: int, per: int, clients: int) -> po.Result:
    shares = [conns // clients + (i < conns % clients) for i in range(clients)]
    cpu_before = po._cpu_seconds(proxy["pid"])
    start_at = time.time() + 0.5
    futures = [
        pool.submit(_client, proxy["port"], proxy["ca"], proxy["auth"], upstream_port, n, per, start_at)
        for n in shares
        if n
    ]
    done = [f.result() for f in futures]
    cpu = po._cpu_seconds(proxy["pid"]) - cpu_before
    requests = sum(d[0] for d in done)
    seconds = max(d[1] for d in done)
    latencies = [x for d in done for x in d[2]]
    # The CPU above spans the warm-up and the set-up of the connections too: per request it is an upper bound.
    return po.Result(proxy["name"], f"c{conns}", requests, seconds, latencies, cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-connection", type=int, default=40)
    parser.add_argument("--clients", type=int, default=2, help="client processes sharing the connections")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from firewall.proxy.ca import agent_ca_path
    from firewall.state import agents
    from firewall.state.db import open_database
    from firewall.state.home import open_home

    tmp = Path(tempfile.mkdtemp(prefix="fw-workers-"))
    homes: list[po.Firewall] = []
    upstream = None
    try:
        ca_file, upstream, upstream_port = po.start_upstream(tmp)
        proxies = {}
        for workers in (1, 2):
            name = f"{workers} worker" + ("s" if workers > 1 else "")
            fw = prepare_home(tmp / f"w{workers}", upstream_port)
            homes.append(fw)
            fw.run("proxy", "start", "--port", "0", "--upstream-ca", str(ca_file), "--workers", str(workers))
            status = json.loads(fw.run("proxy", "status", "--json").stdout)
            home = open_home(fw.home)
            db = open_database(home.database)
            token = agents.mint_token(db, "bench")
            db.close()
            proxies[name] = {
                "name": name,
                "pid": status["pid"],
                "port": status["port"],
                "ca": str(agent_ca_path(home)),
                "auth": f"bench:{token}",
            }
        print(
            f"workers bench: {args.rounds} rounds, {args.per_connection} requests per connection, "
            f"{args.clients} client processes; {os.cpu_count()} cores; {load()} at start",
            flush=True,
        )
        results: list[po.Result] = []
        loads: list[float] = []
        names = list(proxies)
        with ProcessPoolExecutor(max_workers=args.clients) as pool:
            for round_no in range(args.rounds):
                order = names if round_no % 2 == 0 else names[::-1]
                loads.append(os.getloadavg()[0])
                print(f"round {round_no + 1} ({load()})", flush=True)
                for mode, conns in MODES:
                    for name in order:
                        result = measure(pool, proxies[name], upstream_port, conns, args.per_connection, args.clients)
                        results.append(result)
                        print(
                            f"  {mode} {name:9} {result.rps:8.1f} req/s  p50 {result.pct(0.5):6.1f} ms  "
                            f"p99 {result.pct(0.99):6.1f} ms  CPU {result.cpu_us:6.0f} us/request",
                            flush=True,
                        )
        report(results, names, loads)
    finally:
        for fw in homes:
            subprocess.run([po.PYTHON, "-m", "firewall", "proxy", "stop"], env=fw.env, capture_output=True)
        if upstream is not None:
            upstream.terminate()
            upstream.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(results: list[po.Result], names: list[str], loads: list[float]) -> None:
    med = statistics.median
    one, two = names
    print()
    print(f"load average: {min(loads):.2f} to {max(loads):.2f} at the rounds' starts, {load()} at the end")
    print(f"{'figure':28} {one:>10} {two:>10} {'two/one':>9}   (median over rounds)")
    for mode, _ in MODES:
        by = {name: [r for r in results if r.config == name and r.mode == mode] for name in names}
        for label, values, unit in (
            ("requests/s", lambda r: r.rps, ""),
            ("p50", lambda r: r.pct(0.5), "ms"),
            ("p99", lambda r: r.pct(0.99), "ms"),
            ("proxy CPU per request", lambda r: r.cpu_us, "us"),
        ):
            a, b = [values(r) for r in by[one]], [values(r) for r in by[two]]
            ratios = [y / x for x, y in zip(a, b, strict=True) if x]
            print(f"{mode + ' ' + label:28} {med(a):8.1f}{unit:2} {med(b):8.1f}{unit:2} {med(ratios):8.2f}x")


if __name__ == "__main__":
    sys.exit(main())
