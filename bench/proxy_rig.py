"""Firewall proxies side by side for a benchmark, measured in interleaved rounds.

One local HTTPS upstream (trustme certificate) and the 100-rule policy, credential and limit of
bench/proxy_overhead.py; one `firewall proxy start` per configuration, each in its own state
folder; rounds of kept-alive load in which the configurations take turns, the order rotating, so
a machine that gets busier part-way through weighs on each alike. Used by bench/audit_log.py and
bench/exfil_guard.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench import proxy_overhead as po


@dataclass
class Rig:
    """The upstream and the state folders of one benchmark run (see `proxy_rig`)."""

    tmp: Path
    ca_file: Path
    policy_file: Path
    upstream_port: int
    homes: dict[str, po.Firewall]
    children: list[subprocess.Popen] = field(default_factory=list)


@contextmanager
def proxy_rig(prefix: str, names: list[str]) -> Iterator[Rig]:
    """Start the upstream and name a state folder per configuration; on the way out stop the
    proxies that were started, the upstream, and remove every file."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    rig = Rig(tmp, tmp / "ca.pem", tmp / "bench.policy", 0, {name: po.Firewall(tmp / name) for name in names})
    try:
        rig.ca_file, upstream, rig.upstream_port = po.start_upstream(tmp)
        rig.children.append(upstream)
        policy_text, _ = po.generate_policy(rig.upstream_port)
        rig.policy_file.write_text(policy_text)
        yield rig
    finally:
        for child in rig.children:
            child.terminate()
            child.wait(timeout=10)
        for fw in rig.homes.values():
            if fw.home.exists():
                subprocess.run([po.PYTHON, "-m", "firewall", "proxy", "stop"], env=fw.env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def start_proxy(
    rig: Rig, name: str, *start_options: str, prepare: Callable[[po.Firewall], None] | None = None
) -> po.Target:
    """Set up configuration `name` (init, the credential, `prepare`, the policy), start its proxy
    with `start_options` and mint an agent token: the target the load is sent to."""
    from firewall.proxy.ca import agent_ca_path
    from firewall.state import agents
    from firewall.state.db import open_database
    from firewall.state.home import open_home

    fw = rig.homes[name]
    fw.run("init")
    fw.run("secrets", "add", "bench", "--provider", "generic", "--stdin", input=po.SECRET_VALUE + "\n")
    if prepare is not None:
        prepare(fw)
    fw.run("policy", "apply", str(rig.policy_file))
    fw.run("proxy", "start", "--port", "0", "--upstream-ca", str(rig.ca_file), *start_options)
    status = json.loads(fw.run("proxy", "status", "--json").stdout)
    home = open_home(fw.home)
    db = open_database(home.database)
    token = agents.mint_token(db, "bench")
    db.conn.close()
    context = ssl.create_default_context(cafile=str(agent_ca_path(home)))
    return po.Target(name, "127.0.0.1", status["port"], context, f"bench:{token}", pid=status["pid"])


def interleaved_rounds(
    rig: Rig, targets: dict[str, po.Target], rounds: int, per_connection: int, warmup: int, what: str
) -> dict[str, list[po.Result]]:
    """`rounds` rounds of `po.CONCURRENCY` kept-alive tunnels x `per_connection` requests per
    configuration, the order rotating each round; prints each result as it comes."""
    names = list(targets)
    print(
        f"proxy: {rounds} rounds of {po.CONCURRENCY}x{per_connection} {what} per configuration "
        f"({', '.join(names)}); {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )
    results: dict[str, list[po.Result]] = {name: [] for name in names}
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            result = asyncio.run(po._load(targets[name], rig.upstream_port, po.CONCURRENCY, per_connection, warmup))
            results[name].append(result)
            print(
                f"  round {round_no + 1} {name:6} {result.rps:6.0f} req/s  p50 {result.pct(0.5):6.2f} ms"
                f"  p99 {result.pct(0.99):6.2f} ms  proxy CPU {result.cpu_us:5.0f} us/req",
                flush=True,
            )
    print(f"  load average at the end: {os.getloadavg()[0]:.2f}")
    return results
