"""Every figure of issue 18 in one run, each as a ratio against bare mitmproxy in the same run.

    .venv/bin/python bench/scorecard.py [--quick] [--rounds 5] [--workers 1]

(One worker against two, at 16 and 64 connections: bench/workers.py.)

Two proxies are measured side by side, with interleaved rounds (the order alternates each round):

  bare      mitmproxy's DumpMaster with no addons of ours (bench/proxy_overhead.py's `_bare`);
  firewall  `firewall proxy start` in a temporary state folder with proxy_overhead's 100-rule
            policy, a credential injected into every request, a rate limit and the audit log.

Per round and proxy:

  c1, c16, c64  kept-alive HTTPS tunnels (1, 16, 64 at once), opened and warmed before the clock;
                p50 and p99 per request, requests/s, and the proxy's CPU per request (all its
                threads and child processes, such as the audit writer, from /proc);
  new           a new connection per request, one after another: TCP, CONNECT, TLS, one GET;
  start-up      `firewall run -- true` with the shared proxy running and with none (a second state
                folder: the run starts its own proxy), `firewall --help`, and, for the ratio,
                bare mitmproxy from exec until it listens; `python -c pass` for scale.

At the end: each process's peak RSS (VmHWM) in each proxy's process tree (the firewall's proxy
and its audit writer child), summed. Every figure is the median over rounds; a ratio is the
median of the per-round ratios (firewall / bare), so a burst of load from something else on
the machine moves one round, not one proxy. The load average is printed with every round.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench.proxy_overhead` importable
    sys.path.insert(0, str(ROOT))

from bench import proxy_overhead as po  # noqa: E402

MODES = (("c1", 1), ("c16", 16), ("c64", 64))
# per round: requests per tunnel for c1/c16/c64, new connections, start-up timings per case
FULL = {"c1": 1000, "c16": 150, "c64": 40, "new": 100, "startups": 2, "rounds": 5}
QUICK = {"c1": 200, "c16": 40, "c64": 10, "new": 30, "startups": 1, "rounds": 3}


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


async def new_connections(target: po.Target, upstream_port: int, count: int) -> po.Result:
    """`count` requests, each on a connection of its own (opened, used once, closed)."""
    latencies: list[float] = []
    warm = po.Connection(target, upstream_port)  # the first one also makes the leaf certificate
    await warm.open()
    await warm.get()
    await warm.close()
    cpu_before = po._cpu_seconds(target.pid)
    started = time.perf_counter()
    for _ in range(count):
        begun = time.perf_counter()
        conn = po.Connection(target, upstream_port)
        await conn.open()
        await conn.get()
        latencies.append(time.perf_counter() - begun)
        await conn.close()
    seconds = time.perf_counter() - started
    cpu = po._cpu_seconds(target.pid) - cpu_before
    return po.Result(target.name, "new", count, seconds, latencies, cpu)


def peak_rss(pid: int) -> dict[str, float]:
    """Peak RSS (VmHWM, MiB) of `pid` and each of its descendants, by a short name."""
    out: dict[str, float] = {}

    def visit(p: int, name: str) -> None:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return
        hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        out[name] = int(hwm.split()[1]) / 1024
        for i, child in enumerate(po._children(p)):
            visit(child, f"{name}/child{i}")

    visit(pid, "proxy")
    return out


def time_until_port(args: list[str]) -> float:
    """Seconds from exec until a `_bare` mitmproxy prints its port (it listens then); it is stopped."""
    started = time.perf_counter()
    child, _ = po._spawn_port(args)
    elapsed = time.perf_counter() - started
    child.terminate()
    child.wait(timeout=10)
    return elapsed


def prepare_home(home: Path, upstream_port: int) -> po.Firewall:
    fw = po.Firewall(home)
    fw.run("init")
    fw.run("secrets", "add", "bench", "--provider", "generic", "--stdin", input=po.SECRET_VALUE + "\n")
    policy_text, _ = po.generate_policy(upstream_port)
    (home.parent / f"{home.name}.policy").write_text(policy_text)
    fw.run("policy", "apply", str(home.parent / f"{home.name}.policy"))
    return fw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and requests: a minute or two")
    parser.add_argument("--rounds", type=int, help="rounds (default 5, 3 with --quick)")
    parser.add_argument(
        "--probe", action="store_true", help="run the firewall's proxy with its event-loop lag probe; print its line"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="the firewall's proxy processes (proxy start --workers; default 1)"
    )
    args = parser.parse_args()
    size = dict(QUICK if args.quick else FULL)
    if args.rounds:
        size["rounds"] = args.rounds
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # Start-up is measured with the byte code a wheel install (and scripts/setup.sh) leaves:
    # where PYTHONDONTWRITEBYTECODE is set, nothing else would write it.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(ROOT / "firewall")], check=True)

    import certifi

    from firewall.proxy.ca import agent_ca_path
    from firewall.state import agents
    from firewall.state.db import open_database
    from firewall.state.home import open_home

    tmp = Path(tempfile.mkdtemp(prefix="fw-scorecard-"))
    children: list[subprocess.Popen] = []
    homes: list[po.Firewall] = []
    try:
        ca_file, upstream, upstream_port = po.start_upstream(tmp)
        children.append(upstream)

        bundle = tmp / "upstream-trust.pem"
        bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + ca_file.read_bytes())
        bare_args = [po.PYTHON, po.__file__, "_bare", str(tmp / "bare-ca"), str(bundle)]
        bare, bare_port = po._spawn_port(bare_args)
        children.append(bare)
        bare_ctx = ssl.create_default_context(cafile=str(tmp / "bare-ca" / "mitmproxy-ca-cert.pem"))

        warm = prepare_home(tmp / "warm", upstream_port)  # the shared proxy runs here
        cold = prepare_home(tmp / "cold", upstream_port)  # none runs here: `firewall run` starts its own
        homes += [warm, cold]
        run_true = [po.PYTHON, "-m", "firewall", "run", "--", "true"]
        first_cold = po._time_command(run_true, cold.env)  # creates the CA: timed apart
        if args.probe:
            warm.env["FIREWALL_LOOP_PROBE"] = "1"  # firewall/proxy/loop_probe.py
        warm.run("proxy", "start", "--port", "0", "--upstream-ca", str(ca_file), "--workers", str(args.workers))
        warm.env.pop("FIREWALL_LOOP_PROBE", None)  # not for the `firewall run` timings
        status = json.loads(warm.run("proxy", "status", "--json").stdout)
        home = open_home(warm.home)
        db = open_database(home.database)
        token = agents.mint_token(db, "bench")
        db.close()
        fw_ctx = ssl.create_default_context(cafile=str(agent_ca_path(home)))
        targets = {
            "bare": po.Target("bare", "127.0.0.1", bare_port, bare_ctx, pid=bare.pid),
            "firewall": po.Target("firewall", "127.0.0.1", status["port"], fw_ctx, f"bench:{token}", pid=status["pid"]),
        }
        startups = {
            "run, proxy running": (run_true, warm.env),
            "run, no proxy": (run_true, cold.env),
            "firewall --help": ([po.PYTHON, "-m", "firewall", "--help"], warm.env),
            "python -c pass": ([po.PYTHON, "-c", "pass"], warm.env),
        }
        print(
            f"scorecard: {size['rounds']} rounds; c1 1x{size['c1']}, c16 16x{size['c16']}, c64 64x{size['c64']}, "
            f"new {size['new']} per round; {os.cpu_count()} cores; {load()} at start; first `firewall run` "
            f"in a new state folder (creates the CA) {first_cold:.3f} s",
            flush=True,
        )
        results: list[po.Result] = []
        times: dict[str, list[list[float]]] = {name: [] for name in [*startups, "bare mitmproxy start"]}
        loads: list[float] = []
        for round_no in range(size["rounds"]):
            order = ["bare", "firewall"] if round_no % 2 == 0 else ["firewall", "bare"]
            loads.append(os.getloadavg()[0])
            print(f"round {round_no + 1} ({load()})", flush=True)
            for mode, conns in MODES:
                for name in order:
                    result = asyncio.run(po._load(targets[name], upstream_port, conns, size[mode], warmup=2))
                    result.mode = mode
                    results.append(result)
            for name in order:
                results.append(asyncio.run(new_connections(targets[name], upstream_port, size["new"])))
            round_times: dict[str, list[float]] = {name: [] for name in times}
            for _ in range(size["startups"]):
                round_times["bare mitmproxy start"].append(time_until_port(bare_args))
                for name, (command, env) in startups.items():
                    round_times[name].append(po._time_command(command, env))
            for name, values in round_times.items():
                times[name].append(values)
            gc.collect()

        rss = {"bare": peak_rss(bare.pid), "firewall": peak_rss(status["pid"])}
        warm.run("proxy", "stop")
        report(results, times, rss, loads)
        if args.probe:
            log = (warm.home / "run" / "proxy.log").read_text().splitlines()
            print(next((line.split(": ", 1)[1] for line in log if "loop probe:" in line), "no loop probe line"))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        for fw in homes:
            subprocess.run([po.PYTHON, "-m", "firewall", "proxy", "stop"], env=fw.env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(results: list[po.Result], times, rss, loads: list[float]) -> None:
    med = statistics.median
    print()
    print(f"load average: {min(loads):.2f} to {max(loads):.2f} at the rounds' starts, {load()} at the end")
    print(f"{'figure':32} {'bare':>10} {'firewall':>10} {'firewall/bare':>14}   (median over rounds)")

    def row(label: str, bare: list[float], fw: list[float], unit: str) -> None:
        ratios = [f / b for b, f in zip(bare, fw, strict=True) if b]
        ratio = f"{med(ratios):13.2f}x" if ratios else f"{'-':>14}"
        print(f"{label:32} {med(bare):8.2f}{unit:2} {med(fw):8.2f}{unit:2} {ratio}")

    for mode in [m for m, _ in MODES] + ["new"]:
        by = {name: [r for r in results if r.config == name and r.mode == mode] for name in ("bare", "firewall")}
        if mode != "new":
            row(f"{mode} requests/s", [r.rps for r in by["bare"]], [r.rps for r in by["firewall"]], "")
        row(f"{mode} p50", [r.pct(0.5) for r in by["bare"]], [r.pct(0.5) for r in by["firewall"]], "ms")
        row(f"{mode} p99", [r.pct(0.99) for r in by["bare"]], [r.pct(0.99) for r in by["firewall"]], "ms")
        row(f"{mode} proxy CPU per request", [r.cpu_us for r in by["bare"]], [r.cpu_us for r in by["firewall"]], "us")
    base = [med(values) for values in times["bare mitmproxy start"]]
    for name in times:
        values = [med(v) for v in times[name]]
        row(f"{name} (s)", base, values, "s")
    print()
    for name, tree in rss.items():
        parts = ", ".join(f"{proc} {mib:.1f}" for proc, mib in tree.items())
        print(f"peak RSS, {name}: {sum(tree.values()):.1f} MiB ({parts})")
    print(f"peak RSS firewall/bare: {sum(rss['firewall'].values()) / sum(rss['bare'].values()):.2f}x")


if __name__ == "__main__":
    sys.exit(main())
