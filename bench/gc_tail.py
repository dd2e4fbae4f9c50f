"""The proxy's garbage-collection plans side by side: tail latency, loop lag, gc passes, memory.

    .venv/bin/python bench/gc_tail.py [--plans start,deferred] [--rounds 5] [--per-connection 40]

One `firewall proxy start` per plan (firewall/proxy/gc_plan.py; `start` is the default: freeze
once listening, CPython's own full passes), each with the event-loop lag probe
(firewall/proxy/loop_probe.py), in its own state folder with bench/proxy_overhead.py's policy.
Rounds of 16 and 64 kept-alive tunnels, the plans taking turns in a rotating order. Printed per
plan: medians over rounds of p50/p99 and the proxy's CPU per request; then the probe's line
(lateness p99 and max, each generation's passes with their wall and CPU maxima) and the peak RSS
of the proxy and of its audit child.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import proxy_overhead as po  # noqa: E402
from bench.proxy_rig import proxy_rig, start_proxy  # noqa: E402
from bench.scorecard import peak_rss  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plans", default="start,deferred", help="comma-separated FIREWALL_GC_PLAN values")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-connection", type=int, default=40, help="requests per tunnel at 16 connections")
    args = parser.parse_args()
    plans = args.plans.split(",")
    with proxy_rig("fw-gc-", plans) as rig:
        targets = {}
        for plan in plans:
            rig.homes[plan].env.update(FIREWALL_LOOP_PROBE="1", FIREWALL_GC_PLAN=plan)
            targets[plan] = start_proxy(rig, plan, "--workers", "1")
        print(f"gc plans {plans}: {args.rounds} rounds; load average {os.getloadavg()[0]:.2f} at start", flush=True)
        results: dict[tuple[str, int], list[po.Result]] = {}
        for round_no in range(args.rounds):
            shift = round_no % len(plans)
            for conns, per in ((16, args.per_connection), (64, max(1, args.per_connection // 4))):
                for plan in plans[shift:] + plans[:shift]:
                    result = asyncio.run(po._load(targets[plan], rig.upstream_port, conns, per, warmup=2))
                    results.setdefault((plan, conns), []).append(result)
            print(f"  round {round_no + 1} done, load average {os.getloadavg()[0]:.2f}", flush=True)
        rss = {plan: peak_rss(targets[plan].pid) for plan in plans}
        logs = {}
        for plan in plans:
            rig.homes[plan].run("proxy", "stop")
            logs[plan] = (rig.homes[plan].home / "run" / "proxy.log").read_text().splitlines()
    med = statistics.median
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    for plan in plans:
        for conns in (16, 64):
            rs = results[(plan, conns)]
            p50, p99 = med(r.pct(0.5) for r in rs), med(r.pct(0.99) for r in rs)
            print(
                f"{plan:12} c{conns}: p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"
                f"  {med(r.rps for r in rs):6.0f} req/s  CPU {med(r.cpu_us for r in rs):5.0f} us/req"
            )
        tree = ", ".join(f"{name} {mib:.1f}" for name, mib in rss[plan].items())
        print(f"{plan:12} peak RSS {sum(rss[plan].values()):.1f} MiB ({tree})")
        for line in logs[plan]:
            if "loop probe:" in line or "gc plan:" in line:
                print(f"{plan:12} {line.split(': ', 1)[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
