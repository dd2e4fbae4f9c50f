"""Running agents for the end-to-end tests: the scripts in scripts/, under the real `firewall run`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.fixtures import Firewall

SCRIPTS = Path(__file__).parent / "scripts"


@dataclass
class ClientRun:
    code: int
    stderr: str
    env: dict[str, str]
    cmdline: list[str]
    results: list[dict]
    dump: str  # the whole output file, to search for things that must not be there


def run_client(
    fw: Firewall, client: str, base_url: str, *steps: str, agent: str, out: Path, env: dict[str, str] | None = None
) -> ClientRun:
    """scripts/client.py as agent `agent` under `firewall run`; with `env`, run directly with that
    environment instead (for a client that was never given proxy credentials)."""
    command = [sys.executable, str(SCRIPTS / "client.py"), client, base_url, str(out), *steps]
    if env is None:
        done = fw.run("run", "--agent", agent, "--", *command)
    else:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert out.exists(), f"the client wrote nothing (exit {done.returncode}):\n{done.stderr}"
    dump = out.read_text()
    data = json.loads(dump)
    return ClientRun(done.returncode, done.stderr, data["env"], data["cmdline"], data["results"], dump)


def rule_line(policy_text: str, fragment: str) -> int:
    """The 1-based line of `policy_text` that holds `fragment` (once)."""
    lines = [n for n, line in enumerate(policy_text.splitlines(), 1) if fragment in line]
    assert len(lines) == 1, f"{fragment!r} is on lines {lines}"
    return lines[0]


def wait_until(predicate, timeout: float, interval: float = 0.02):
    """Poll `predicate` until it returns something truthy (returned) or `timeout` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def database_bytes(home: Path) -> bytes:
    """The state database's file and its write-ahead log (if there is one), byte for byte."""
    files = [home / "firewall.db", home / "firewall.db-wal"]
    return b"".join(path.read_bytes() for path in files if path.exists())
