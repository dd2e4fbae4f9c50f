"""Start-up of the commands a person or a script runs most: CPU time and imports, then wall time.

    .venv/bin/python bench/startup.py [--rounds 7] [--tree PATH ...]

Cases (as in bench/scorecard.py): `firewall run -- true` with the shared proxy running and
with none (a second state folder: the run starts a proxy of its own and stops it), both in
the sandbox (bwrap) as a user gets it; `firewall --help`; `python -c pass` for scale.

Per case the median over rounds of: the CPU time of the whole process tree (user + system of
the command and every descendant it waited for, from `getrusage(RUSAGE_CHILDREN)`), which a
loaded machine disturbs little; the wall time, which is the machine's queue when it is loaded
(the load average is printed with it); and the modules the command's own process imported
(`-X importtime`, one extra run per case). With several `--tree`s (source trees put first on
PYTHONPATH, e.g. a branch and its base) the trees alternate within each round, so both see the
same load. The state folders are made once, with the first tree.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SECRET_VALUE = "sk-bench-0123456789abcdefghijklmnopqrstuvwxyz"
POLICY = """credential bench {
    secret "bench"
    header Authorization = "Bearer {secret}"
}

host localhost:9 {
    inject bench
    allow GET /v1/models
}
"""


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def tree_env(tree: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWALL_") and "PROXY" not in k.upper()}
    env["FIREWALL_HOME"] = str(home)
    env["PYTHONPATH"] = str(tree)
    return env


def firewall(env: dict[str, str], *args: str, input: str | None = None) -> str:
    done = subprocess.run(
        [PYTHON, "-m", "firewall", *args], input=input, capture_output=True, text=True, env=env, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"firewall {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def prepare(home: Path, env: dict[str, str]) -> None:
    firewall(env, "init")
    firewall(env, "secrets", "add", "bench", "--provider", "generic", "--stdin", input=SECRET_VALUE + "\n")
    policy = home.parent / f"{home.name}.policy"
    policy.write_text(POLICY)
    firewall(env, "policy", "apply", str(policy))


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process tree) of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, timeout=60)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{command} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def modules(command: list[str], env: dict[str, str]) -> int:
    """How many modules the command's own process imported."""
    done = subprocess.run([command[0], "-X", "importtime", *command[1:]], env=env, capture_output=True, timeout=60)
    return sum(1 for line in done.stderr.decode().splitlines() if line.startswith("import time:") and "|" in line) - 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tree", type=Path, action="append", help="a source tree to measure (default: this one)")
    args = parser.parse_args()
    trees = [path.resolve() for path in args.tree or [ROOT]]
    tmp = Path(tempfile.mkdtemp(prefix="fw-startup-"))
    os.chdir(tmp)  # `python -m` puts the working folder first on sys.path, before PYTHONPATH
    warm_home, cold_home = tmp / "warm", tmp / "cold"
    first = trees[0]
    try:
        for home in (warm_home, cold_home):
            prepare(home, tree_env(first, home))
        run_true = [PYTHON, "-m", "firewall", "run", "--", "true"]
        measure(run_true, tree_env(first, cold_home))  # the first start in a state folder creates the CA
        firewall(tree_env(first, warm_home), "proxy", "start", "--port", "0", "--workers", "1")
        cases = {
            "run, proxy running": (run_true, warm_home),
            "run, no proxy": (run_true, cold_home),
            "firewall --help": ([PYTHON, "-m", "firewall", "--help"], warm_home),
            "python -c pass": ([PYTHON, "-c", "pass"], warm_home),
        }
        for tree in trees:  # warm-up: byte code compiled, files in the page cache
            for command, home in cases.values():
                measure(command, tree_env(tree, home))
        print(f"startup: {args.rounds} rounds, {os.cpu_count()} cores, {load()} at start", flush=True)
        walls: dict[tuple[Path, str], list[float]] = {(t, c): [] for t in trees for c in cases}
        cpus: dict[tuple[Path, str], list[float]] = {(t, c): [] for t in trees for c in cases}
        for round_no in range(args.rounds):
            order = trees if round_no % 2 == 0 else trees[::-1]
            for case, (command, home) in cases.items():
                for tree in order:
                    wall, cpu = measure(command, tree_env(tree, home))
                    walls[tree, case].append(wall)
                    cpus[tree, case].append(cpu)
        end_load = load()
        med = statistics.median
        for tree in trees:
            print(f"\n{tree}")
            print(f"  {'case':<22} {'CPU s (median, min)':>20} {'wall s (median, min)':>21} {'modules':>8}")
            for case, (command, home) in cases.items():
                c, w = cpus[tree, case], walls[tree, case]
                count = modules(command, tree_env(tree, home))
                print(f"  {case:<22} {med(c):>12.3f} {min(c):>7.3f} {med(w):>13.3f} {min(w):>7.3f} {count:>8}")
        print(f"\n{end_load} at the end")
    finally:
        for home in (warm_home, cold_home):
            subprocess.run(
                [PYTHON, "-m", "firewall", "proxy", "stop"], env=tree_env(first, home), capture_output=True, timeout=60
            )
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
