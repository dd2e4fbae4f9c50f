"""The CPU a limited request costs in a proxy of several workers: the count service's round trip.

    .venv/bin/python bench/count_service.py [--checks 20000] [--callers 1 8 64] [--rounds 3]

A count of work, not of time: the count service (firewall/proxy/counts.py) runs in a process of
its own, as in the supervisor; this process is the worker, `--callers` tasks at once calling
`Limiter.check` (the very call the Enforcer makes) `--checks` times in all. Printed per number of
callers: the CPU per check of the worker (this process, `time.process_time`) and of the service
(its /proc/PID/stat), and, as the floor, a single proxy's in-process count (`memory://`), all
medians over rounds. With one caller every check is a round trip of its own; with many, the
requests of one event-loop turn share a write (and the service's answers a read).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.proxy_overhead import _cpu_seconds  # noqa: E402
from firewall.policy.decision import LimitRef, RuleRef  # noqa: E402
from firewall.proxy.counts import CountClient  # noqa: E402
from firewall.proxy.limiter import Limiter  # noqa: E402

LIMITS = (LimitRef("bench-limit", 10**9, "minute", None, RuleRef("bench.policy", 1, "limit")),)
SERVE = """
import asyncio, sys
from pathlib import Path
from firewall.proxy.counts import CountService
async def main():
    service = CountService(Path(sys.argv[1]))
    await service.start()
    print(service.path, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await service.close()
asyncio.run(main())
"""


async def _checks(limiter: Limiter, checks: int, callers: int) -> None:
    share = [checks // callers + (i < checks % callers) for i in range(callers)]

    async def caller(n: int) -> None:
        for _ in range(n):
            await limiter.check(LIMITS, time.time())

    await asyncio.gather(*(caller(n) for n in share))


def measure(limiter: Limiter, service_pid: int | None, checks: int, callers: int) -> tuple[float, float]:
    """(worker, service) CPU seconds per check."""

    async def run() -> tuple[float, float]:
        await limiter.check_storage()
        await _checks(limiter, 200, callers)  # warm
        worker, service = time.process_time(), _cpu_seconds(service_pid)
        await _checks(limiter, checks, callers)
        used = (time.process_time() - worker) / checks, (_cpu_seconds(service_pid) - service) / checks
        if limiter.counts is not None:
            await limiter.counts.close()
        return used

    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=20000)
    parser.add_argument("--callers", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fw-counts-") as tmp:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        service = subprocess.Popen(
            [sys.executable, "-c", SERVE, tmp], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        try:
            path = Path(service.stdout.readline().strip())
            print(f"count service bench: {args.checks} checks, {args.rounds} rounds; load {os.getloadavg()[0]:.2f}")
            print(
                f"{'callers':>8} {'in-process':>12} {'worker':>10} {'service':>10} {'round trip':>11}  (us CPU/check)"
            )
            for callers in args.callers:
                memory, worker, served = [], [], []
                for _ in range(args.rounds):
                    memory.append(measure(Limiter("memory://"), None, args.checks, callers)[0])
                    w, s = measure(Limiter(counts=CountClient(path), timeout=5), service.pid, args.checks, callers)
                    worker.append(w)
                    served.append(s)
                med = statistics.median
                print(
                    f"{callers:8} {med(memory) * 1e6:12.1f} {med(worker) * 1e6:10.1f} {med(served) * 1e6:10.1f} "
                    f"{(med(worker) + med(served)) * 1e6:11.1f}",
                    flush=True,
                )
            print(f"load {os.getloadavg()[0]:.2f} at the end")
        finally:
            service.stdin.close()
            service.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
