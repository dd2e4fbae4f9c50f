"""What the sandbox adds to `firewall run -- true`: isolated (the default) vs `--no-isolate`.

    .venv/bin/python bench/run_isolation.py [--rounds 9]

In a temporary FIREWALL_HOME with a one-line policy applied, it times `firewall run -- true`
with no proxy running (the run starts its own) and with the shared proxy running, each with and
without isolation, interleaved round by round (the order rotates); every figure is the median.
A first run, which creates the CA, is made before the clock starts. Also timed: the sandbox alone
(bwrap with the run's namespaces and mounts, and the helper that hands out the listener).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


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
        sandbox_alone = [PYTHON, "-c", SANDBOX_ALONE, str(home)]
        cases = {
            "no proxy, isolated": [*firewall, "run", "--", "true"],
            "no proxy, --no-isolate": [*firewall, "run", "--no-isolate", "--", "true"],
        }
        times: dict[str, list[float]] = {name: [] for name in [*cases, "shared proxy, isolated",
                                                              "shared proxy, --no-isolate", "sandbox alone"]}
        for n in range(rounds):
            names = list(cases)
            for name in names[n % 2:] + names[:n % 2]:
                times[name].append(timed(cases[name], env))
            times["sandbox alone"].append(timed(sandbox_alone, env))
        subprocess.run([*firewall, "proxy", "start", "--port", "0"], env=env, check=True, capture_output=True)
        try:
            shared = {"shared proxy, isolated": cases["no proxy, isolated"],
                      "shared proxy, --no-isolate": cases["no proxy, --no-isolate"]}
            for n in range(rounds):
                names = list(shared)
                for name in names[n % 2:] + names[:n % 2]:
                    times[name].append(timed(shared[name], env))
        finally:
            subprocess.run([*firewall, "proxy", "stop"], env=env, capture_output=True)
    print(f"median of {rounds}, load average {os.getloadavg()[0]:.2f}")
    for name, values in times.items():
        print(f"{name:28} {statistics.median(values) * 1000:7.1f} ms  (min {min(values) * 1000:.1f})")
    for where in ("no proxy", "shared proxy"):
        added = statistics.median(times[f"{where}, isolated"]) - statistics.median(times[f"{where}, --no-isolate"])
        print(f"isolation adds, {where}: {added * 1000:.1f} ms")


# The sandbox alone: what run_in costs around `true`, without the firewall command.
SANDBOX_ALONE = """
import sys, socket
from pathlib import Path
from firewall.run import sandbox, supervise
home = Path(sys.argv[1])
probe = socket.socket(); probe.bind(("127.0.0.1", 0)); port = probe.getsockname()[1]
mounts = sandbox.Mounts((home,), (home / "run" / "ca-bundle.pem", home / "run" / "ca-cert.pem"))
sys.exit(supervise.run_in(mounts, port, ["true"], {"PATH": "/usr/bin:/bin"}))
"""

if __name__ == "__main__":
    main()
