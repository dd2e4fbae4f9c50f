"""Audit writer processes killed in a row under load: children killed before they read a batch
do not count against it, so no healthy batch is given up and every request keeps exactly one
row. Control: the same load with no child killed."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.faults.support import LoadClient, check_nothing_lost, hammer, log_lines, proxy_status

pytestmark = pytest.mark.faults

POLICY = """\
host localhost:{port} {{
    allow GET /v1/models
}}
"""
THREADS, PER_THREAD = 8, 40
KILLS = 4
BOUND = 10.0


def audit_children(proxy_pid: int) -> set[int]:
    """Pids of the proxy's audit writer processes (`python -m firewall.audit.child`)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == proxy_pid and b"firewall.audit.child" in cmdline:
            found.add(int(entry.name))
    return found


def kill_children_in_a_row(proxy_pid: int, kills: int, killed: list[int]) -> None:
    """SIGKILL the audit child, then each new one as soon as it appears, `kills` times."""
    deadline = time.monotonic() + 60
    while len(killed) < kills and time.monotonic() < deadline:
        for pid in audit_children(proxy_pid) - set(killed):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(pid)
        time.sleep(0.005)


def test_audit_children_killed_in_a_row_lose_no_row(firewall, upstream, proxy):
    firewall.apply(POLICY.format(port=upstream.port))
    load = LoadClient(firewall, proxy.port, upstream)
    pid = proxy_status(firewall)["workers"][0]  # a proxy process (the proxy itself when it has one worker)

    control = hammer(load, ["/v1/models"], THREADS, PER_THREAD // 4)
    killed: list[int] = []
    killer = threading.Thread(target=kill_children_in_a_row, args=(pid, KILLS, killed), daemon=True)
    killer.start()
    under_kills = hammer(load, ["/v1/models"], THREADS, PER_THREAD)
    killer.join(timeout=70)
    assert len(killed) == KILLS, f"only {len(killed)} audit children were killed"
    proxy.stop()

    check_nothing_lost(firewall, upstream, control, "audit children: control (none killed)", BOUND)
    figures = check_nothing_lost(firewall, upstream, under_kills, f"audit children: {KILLS} killed in a row", BOUND)
    print(f"[fault figures] audit children killed: {killed}")
    assert figures["answers"] == {"200": THREADS * PER_THREAD}
    assert not log_lines(firewall, "given up on")
    assert firewall.run("audit", "verify").returncode == 0
