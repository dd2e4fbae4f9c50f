"""What the sandbox adds to `firewall run -- true`: isolated (the default) vs `--no-isolate`.

    .venv/bin/python bench/run_isolation.py [--rounds 9]

In a temporary FIREWALL_HOME with a one-line policy applied, it times `firewall run -- true`
with no proxy running (the run starts its own) and with the shared proxy running, each with and
without isolation, interleaved round by round (the order rotates); every figure is the median.
A first run, which creates the CA, is made before the clock starts. Also timed: the sandbox alone
(bwrap with the run's namespaces and mounts, the listener made in its namespace and the relay),
and the CPU time of each `firewall run` (user + system of its whole process tree), which a busy
machine disturbs less than wall-clock time.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], env: dict[str, str], name: str = "") -> float:
    started, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if name:
        cpu_times.setdefault(name, []).append(_children_cpu() - cpu)
    return time.perf_counter() - started


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sandbox_alone(home: Path) -> float:
    """What supervise.run_in costs around `true` (bwrap, the listener, the relay), in this process."""
    from firewall.run import sandbox, supervise

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    mounts = sandbox.Mounts((home,), (home / "run" / "ca-bundle.pem", home / "run" / "ca-cert.pem"))
    started = time.perf_counter()
    supervise.run_in(mounts, probe.getsockname()[1], ["true"], {"PATH": "/usr/bin:/bin"})
    elapsed = time.perf_counter() - started
    probe.close()
    return elapsed


cpu_times: dict[str, list[float]] = {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "FIREWALL_HOME": str(home), "PYTHONPATH": str(ROOT)}
        firewall = [PYTHON, "-m", "firewall"]
        subprocess.run([*firewall, "init"], env=env, check=True, capture_output=True)
        policy = Path(tmp) / "p.policy"
        policy.write_text("default block\n")
        subprocess.run([*firewall, "policy", "apply", str(policy)], env=env, check=True, capture_output=True)
        timed([*firewall, "run", "--", "true"], env)  # creates the CA
        cases = {
            "no proxy, isolated": [*firewall, "run", "--", "true"],
            "no proxy, --no-isolate": [*firewall, "run", "--no-isolate", "--", "true"],
        }
        times: dict[str, list[float]] = {
            name: [] for name in [*cases, "shared proxy, isolated", "shared proxy, --no-isolate", "sandbox alone"]
        }
        for n in range(rounds):
            names = list(cases)
            for name in names[n % 2 :] + names[: n % 2]:
                times[name].append(timed(cases[name], env, name))
            times["sandbox alone"].append(sandbox_alone(home))
        subprocess.run([*firewall, "proxy", "start", "--port", "0"], env=env, check=True, capture_output=True)
        try:
            shared = {
                "shared proxy, isolated": cases["no proxy, isolated"],
                "shared proxy, --no-isolate": cases["no proxy, --no-isolate"],
            }
            for n in range(rounds):
                names = list(shared)
                for name in names[n % 2 :] + names[: n % 2]:
                    times[name].append(timed(shared[name], env, name))
        finally:
            subprocess.run([*firewall, "proxy", "stop"], env=env, capture_output=True, check=False)
    print(f"median of {rounds}, load average {os.getloadavg()[0]:.2f}; CPU: user+system of the whole process tree")
    for name, values in times.items():
        print(f"{name:28} {statistics.median(values) * 1000:7.1f} ms  (min {min(values) * 1000:.1f})")
    for name, values in cpu_times.items():
        print(f"CPU {name:24} {statistics.median(values) * 1000:7.1f} ms")
    for where in ("no proxy", "shared proxy"):
        added = statistics.median(times[f"{where}, isolated"]) - statistics.median(times[f"{where}, --no-isolate"])
        print(f"isolation adds, {where}: {added * 1000:.1f} ms")


if __name__ == "__main__":
    main()
