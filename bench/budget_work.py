"""What counting usage costs the proxy per streamed answer, in instructions (callgrind), not time.

    .venv/bin/python bench/budget_work.py [--answers 8] [--words 300] [--loads responses,...] [--top 8]

Wall and CPU time on a shared 2-core VM spread by about 20% round to round
(bench/budget_proxy.py), more than the 5% the budgets' target asks to tell apart. An
instruction count is exact and no load disturbs it. The same two proxies as
bench/budget_proxy.py (`plain`, and `budgets` with a token and a dollar budget; one process
each, `python -m firewall.proxy` as `proxy start --workers 1` runs it, so no count service)
each run under `valgrind --tool=callgrind` (the audit writer, a child started by exec, is not
traced); the upstream and this client run natively. For each load (a shape of streamed
answer: responses, chat-asked, chat-strip; see bench/budget_proxy.py) one HTTPS tunnel is
opened, a few answers warm the path up, and then callgrind's counters are dumped (through
`callgrind_control`) around N answers and around 2N answers, one after another on that
tunnel. The difference of the two, divided by N, is the instructions per answer with every
fixed cost (start-up, the tunnel, the dumps themselves) taken out.

One correction: the proxy also works by the clock (the budgets snapshot once a second, the
audit gate's check), and under valgrind a second is about one answer, not fifty. An idle
stretch measured at the end gives each proxy's instructions per second of clock work; the
figures subtract that rate times the extra seconds the 2N batch took (printed: it is
small). The budgets snapshot writes its file only when a count changed, which in an idle
stretch it does not: that write, at most once a second, is left in the budgets figure.

Prints per load: instructions per answer plain and with budgets, their ratio (the work
ratio; the target is at most 1.05), and the C functions (the interpreter's own, Python code
is run by them) that the difference goes to, per answer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.budget_proxy import LOADS, Proxy, _answers, _Tunnel  # noqa: E402
from bench.proxy_overhead import PYTHON, Firewall, start_upstream  # noqa: E402

START_TIMEOUT = 900.0  # seconds: a proxy's start-up under callgrind, on a busy machine
WARM = 4  # answers before the first dump: caches filled, the interpreter's specialisation done
IDLE = 20.0  # seconds of the idle stretch that measures clock work
POLICY_BLOCK = "host localhost:{port} {{\n"
BUDGET_LINES = "    limit 1000000000 tokens per day per agent\n    limit $1000000 per day per agent\n"


@dataclass
class Batch:
    answers: int
    seconds: float
    instructions: int
    functions: Counter  # self instructions per C function


@dataclass
class Measured:
    proxy: str
    batches: dict[str, tuple[Batch, Batch]] = field(default_factory=dict)  # load: (N, 2N)
    idle_per_second: float = 0.0

    def per_answer(self, load: str) -> float:
        one, two = self.batches[load]
        clock = self.idle_per_second * (two.seconds - one.seconds)
        return (two.instructions - one.instructions - clock) / (two.answers - one.answers)

    def clock_share(self, load: str) -> float:
        """The clock work taken out, per answer."""
        one, two = self.batches[load]
        return self.idle_per_second * (two.seconds - one.seconds) / (two.answers - one.answers)

    def functions(self, load: str) -> Counter:
        one, two = self.batches[load]
        n = two.answers - one.answers
        diff = Counter(two.functions)
        diff.subtract(one.functions)
        return Counter({name: cost / n for name, cost in diff.items()})


# ---------------------------------------------------------------- callgrind


class Callgrind:
    """One proxy under callgrind (`--separate-threads=yes`): its dumps, read as they are made."""

    def __init__(self, out: Path, pid: int):
        self.out = out  # --callgrind-out-file; dump k of thread t is written to `out.k-t`
        self.pid = pid
        self.dumps = 0

    def dump(self) -> tuple[int, Counter]:
        """Dump the counters (they start again from zero); the total and the self cost per function,
        of every thread but the policy watcher's (clock work: it polls the database five times a
        second, whatever the load; told apart by the SQLite it runs)."""
        result = subprocess.run(
            ["callgrind_control", "--dump", str(self.pid)], capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            raise RuntimeError(f"callgrind_control --dump {self.pid} failed: {result.stdout}{result.stderr}")
        self.dumps += 1
        deadline = time.monotonic() + 120
        while True:
            paths = sorted(self.out.parent.glob(f"{self.out.name}.{self.dumps}-*"))
            if paths and all("totals:" in p.read_text()[-4096:] for p in paths):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"callgrind wrote no {self.out}.{self.dumps}-*")
            time.sleep(0.2)
        total, functions = 0, Counter()
        for path in paths:
            thread_total, thread_functions = read_dump(path)
            if sum(cost for name, cost in thread_functions.items() if name.startswith("sqlite3")) * 100 > thread_total:
                continue  # the policy watcher (6% of its own instructions are SQLite's; no other thread runs any)
            total += thread_total
            functions.update(thread_functions)
        return total, functions


def read_dump(path: Path) -> tuple[int, Counter]:
    """(total instructions, self instructions per function) of a callgrind dump (one event: Ir)."""
    names: dict[str, str] = {}
    costs: Counter = Counter()
    total = 0
    function = "?"
    after_call = False

    def name(spec: str) -> str:
        match = re.match(r"\((\d+)\)(?: (.*))?$", spec.strip())
        if not match:
            return spec.strip()
        if match.group(2) is not None:
            names[match.group(1)] = match.group(2)
        return names.get(match.group(1), spec.strip())

    with path.open() as lines:
        for line in lines:
            head = line[:1]
            if head.isdigit() or head in "+-*":
                if after_call:  # the inclusive cost of the call above: not this function's own
                    after_call = False
                    continue
                parts = line.split()
                if len(parts) > 1:
                    costs[function] += int(parts[1])
            elif line.startswith("fn="):
                function = name(line[3:])
            elif line.startswith("cfn="):
                name(line[4:])
            elif line.startswith("calls="):
                after_call = True
            elif line.startswith(("totals:", "summary:")):
                total = int(line.split()[1])
    return total or sum(costs.values()), costs


# ---------------------------------------------------------------- the proxies


def _home(tmp: Path, name: str, policy: str) -> Firewall:
    fw = Firewall(tmp / name)
    fw.run("init")
    (tmp / f"{name}.policy").write_text(policy)
    fw.run("policy", "apply", str(tmp / f"{name}.policy"))
    return fw


def _start(tmp: Path, fw: Firewall, name: str, ca_file: Path) -> tuple[subprocess.Popen, Proxy, Callgrind]:
    from firewall.proxy.ca import agent_ca_path
    from firewall.proxy.state_file import read_info
    from firewall.run.proxy_process import shared_state_file
    from firewall.state import agents
    from firewall.state.db import open_database
    from firewall.state.home import open_home

    home = open_home(fw.home)
    state_file = shared_state_file(home)
    out = tmp / f"{name}.callgrind"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--trace-children=no",  # the audit writer (exec'd) runs natively
        "--separate-threads=yes",
        "--vgdb=yes",
        "--log-file=" + str(tmp / f"{name}.valgrind.log"),
        PYTHON,
        "-m",
        "firewall.proxy",
        "--port",
        "0",
        "--state-file",
        str(state_file),
        "--limits-storage",
        "memory://",
        "--limits-timeout",
        "0.25",
        "--log-file",
        str(home.run_dir / "proxy.log"),
        "--upstream-ca",
        str(ca_file),
    ]
    env = {**fw.env, "PYTHONHASHSEED": "0"}  # the same dict layouts in both proxies, run to run
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT
    while (info := read_info(state_file)) is None or info.pid != process.pid:
        if process.poll() is not None:
            raise RuntimeError(f"{name}: the proxy under valgrind exited {process.returncode}; see {tmp}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{name}: the proxy under valgrind did not listen within {START_TIMEOUT:.0f}s")
        time.sleep(0.5)
    db = open_database(home.database)
    token = agents.mint_token(db, "bench")
    db.close()
    context = ssl.create_default_context(cafile=str(agent_ca_path(home)))
    return process, Proxy(name, info.port, process.pid, context, f"bench:{token}"), Callgrind(out, process.pid)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


# ---------------------------------------------------------------- the load


async def _measure(proxy: Proxy, grind: Callgrind, upstream_port: int, loads: list[str], n: int) -> Measured:
    measured = Measured(proxy.name)
    for load in loads:
        path, body = LOADS[load]
        tunnel = _Tunnel(proxy, upstream_port, path, body)
        await tunnel.open()
        for _ in range(WARM):
            await tunnel.post()
        batches = []
        await asyncio.to_thread(grind.dump)  # everything so far: not measured
        for answers in (n, 2 * n):
            started = time.monotonic()
            for _ in range(answers):
                await tunnel.post()
            seconds = time.monotonic() - started
            total, functions = await asyncio.to_thread(grind.dump)
            batches.append(Batch(answers, seconds, total, functions))
            print(
                f"  {proxy.name:8} {load:10} {answers:3} answers: {total:>14,} instructions in {seconds:6.1f} s",
                flush=True,
            )
        measured.batches[load] = (batches[0], batches[1])
        await tunnel.close()
    await asyncio.to_thread(grind.dump)
    started = time.monotonic()
    await asyncio.sleep(IDLE)
    total, _ = await asyncio.to_thread(grind.dump)
    measured.idle_per_second = total / (time.monotonic() - started)
    print(f"  {proxy.name:8} idle: {measured.idle_per_second:,.0f} instructions a second", flush=True)
    return measured


def _report(plain: Measured, counted: Measured, loads: list[str], top: int) -> None:
    print("\ninstructions per answer (2N - N, over N; clock work taken out):")
    print(f"{'load':10} {'plain':>13} {'budgets':>13} {'ratio':>6} {'added':>11}  clock work taken out (plain/budgets)")
    for load in loads:
        p, b = plain.per_answer(load), counted.per_answer(load)
        print(
            f"{load:10} {p:13,.0f} {b:13,.0f} {b / p:6.3f} {b - p:11,.0f}  "
            f"{plain.clock_share(load):,.0f} / {counted.clock_share(load):,.0f}"
        )
    for load in loads:
        diff = counted.functions(load)
        diff.subtract(plain.functions(load))
        added = counted.per_answer(load) - plain.per_answer(load)
        print(f"\n{load}: where the {added:,.0f} added instructions per answer go (self cost, C functions)")
        for name, cost in sorted(diff.items(), key=lambda item: -item[1])[:top]:
            print(f"  {cost:12,.0f}  {name}")


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=8, help="N: the batches are N and 2N answers")
    parser.add_argument("--words", type=int, default=300, help="words in each streamed answer")
    parser.add_argument("--loads", default=",".join(LOADS), help=f"comma-separated, of {', '.join(LOADS)}")
    parser.add_argument("--top", type=int, default=8, help="functions listed per load")
    parser.add_argument("--keep", action="store_true", help="keep the callgrind dumps (their folder is printed)")
    args = parser.parse_args()
    loads = args.loads.split(",")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("error: valgrind (with callgrind_control) is not installed", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tmp = Path(tempfile.mkdtemp(prefix="fw-bench-budget-work-"))
    children: list[subprocess.Popen] = []
    try:
        upstream_script = str(ROOT / "bench" / "budget_proxy.py")
        ca_file, upstream, upstream_port = start_upstream(tmp, upstream_script, str(args.words))
        children.append(upstream)
        block = POLICY_BLOCK.format(port=upstream_port)
        homes = {
            "plain": _home(tmp, "plain", block + "    allow POST\n}\n"),
            "budgets": _home(tmp, "budgets", block + BUDGET_LINES + "    allow POST\n}\n"),
        }
        sizes = {name: len(body) for name, body in _answers(args.words).items()}
        print(
            f"bench: callgrind, batches of {args.answers} and {2 * args.answers} answers per load on one tunnel; "
            f"answers of {args.words} words ({', '.join(f'{k} {v} B' for k, v in sizes.items())}); "
            f"load average {os.getloadavg()[0]:.2f} at start",
            flush=True,
        )

        async def both() -> list[Measured]:
            async def one(name: str) -> Measured:
                process, proxy, grind = await asyncio.to_thread(_start, tmp, homes[name], name, ca_file)
                children.append(process)
                print(f"  {name}: listening under callgrind (pid {process.pid})", flush=True)
                try:
                    return await _measure(proxy, grind, upstream_port, loads, args.answers)
                finally:
                    await asyncio.to_thread(_stop, process)

            return list(await asyncio.gather(one("plain"), one("budgets")))

        plain, counted = asyncio.run(both())
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        _report(plain, counted, loads, args.top)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
        if args.keep:
            print(f"dumps kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
