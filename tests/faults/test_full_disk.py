"""A full disk under load (a small tmpfs mounted as the state folder): the audit log's backlog
stays bounded, new requests are refused with 503 audit_unavailable past the bound, `proxy status`
says so, and once space is back every row is written. A stop while the disk is still full
reports the rows it lost in `proxy stop`'s output and exit code. Control: the same load before
the disk fills."""

from __future__ import annotations

import contextlib
import re
import subprocess
from pathlib import Path

import pytest

from tests.faults.support import LoadClient, hammer_for, proxy_status, tag_of
from tests.faults.test_locked_database import check_rows
from tests.support.fixtures import make_firewall, running_proxy

pytestmark = pytest.mark.faults

POLICY = """\
host localhost:{port} {{
    allow GET /v1/models
}}
"""
THREADS = 4
FULL_FOR = 9.0  # seconds of load on the full disk: longer than the 5 s bound


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 64 MiB tmpfs; skipped where mounting is not permitted (the suite runs as root in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(mount)],
            check=True,
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs to fill ({exc}); run the fault suite as root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


def fill(mount: Path) -> Path:
    """Write a file until the disk is full."""
    filler = mount / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(chunk)
            handle.flush()
    with open(mount / "filler-small", "wb") as handle, contextlib.suppress(OSError):
        while True:  # the last pages
            handle.write(b"\0" * 4096)
            handle.flush()
    return filler


def free(mount: Path) -> None:
    for name in ("filler", "filler-small"):
        (mount / name).unlink(missing_ok=True)


def test_a_full_disk_refuses_past_the_bound_and_loses_nothing_once_space_is_back(
    small_disk, upstream, upstream_ca_file
):
    firewall = make_firewall(small_disk / "home")
    with running_proxy(firewall, upstream_ca_file) as proxy:
        firewall.apply(POLICY.format(port=upstream.port))
        load = LoadClient(firewall, proxy.port, upstream)
        control = hammer_for(load, "/v1/models", THREADS, 2.0)
        firewall.audit_rows_once(lambda rows: len(rows) >= len(control), timeout=30)
        figures = check_rows(firewall, upstream, control, "full disk: control (space left)", bound=5.0)
        assert figures["refused 503 audit_unavailable"] == 0

        fill(small_disk)
        on_full_disk = hammer_for(load, "/v1/models", THREADS, FULL_FOR)
        status = proxy_status(firewall)
        free(small_disk)
        firewall.audit_rows_once(lambda rows: len(rows) >= len(control) + len(on_full_disk), timeout=30)
        admitted = sum(a.status == 200 for a in on_full_disk)
        figures = check_rows(
            firewall,
            upstream,
            on_full_disk,
            "full disk: then space is freed",
            bound=5.0,
            **{"admitted while full": admitted},
        )
        assert figures["refused 503 audit_unavailable"] > 0, figures
        problems = {p["what"]: p["message"] for p in status["problems"]}
        assert "503 audit_unavailable" in problems.get("writing the audit log", ""), status

        # Full again, and stopped while full: the rows still waiting are lost, and said so.
        fill(small_disk)
        last = hammer_for(load, "/v1/models", THREADS, 3.0)
        stopped = firewall.run("proxy", "stop", timeout=60)
        free(small_disk)
        rows = firewall.audit_rows()
        tagged = {tag_of(r["query"] or "") for r in rows}
        refused_answers = sum(a.error == "audit_unavailable" for a in on_full_disk + last)
        missing = (
            sum(a.status == 200 and a.tag not in tagged for a in last)
            + refused_answers
            - sum(r["reason"] == "audit_unavailable" for r in rows)
        )
        reported = re.search(r"error: (\d+) audit row\(s\) were not written", stopped.stderr)
        assert reported and int(reported[1]) == missing, (missing, stopped.stderr)
        print(
            f"\n[fault figures] full disk: stop while full: {len(last)} requests, {missing} rows lost and reported, "
            f"exit {stopped.returncode}: {stopped.stderr.strip()[:90]}"
        )
        assert stopped.returncode == 1, stopped
        assert "proxy stopped" in stopped.stdout
        assert "audit row(s) were not written" in stopped.stderr
        assert "Traceback" not in stopped.stdout + stopped.stderr
        assert firewall.run("audit", "verify").returncode == 0


def test_firewall_run_on_a_disk_that_fills_exits_with_the_agents_code(small_disk):
    """The agent fills the disk and exits 3: `firewall run` exits 3 with a one-line warning (no
    traceback), and the run's token is not live afterwards. Control: the same run with space."""
    from firewall.state import agents
    from firewall.state.db import open_database

    firewall = make_firewall(small_disk / "home")
    firewall.apply(POLICY.format(port=1))
    control = firewall.run("run", "--no-isolate", "--", "sh", "-c", "exit 3", timeout=90)
    assert control.returncode == 3, control.stderr
    filling = (
        f"dd if=/dev/zero of={small_disk}/filler bs=1M; dd if=/dev/zero of={small_disk}/filler-small bs=4k; exit 3"
    )
    result = firewall.run("run", "--no-isolate", "--", "sh", "-c", filling, timeout=90)
    free(small_disk)
    print(
        f"\n[fault figures] full disk: firewall run: exit {result.returncode}; stderr: {result.stderr.strip()[-160:]}"
    )
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "could not revoke this run's proxy token" in result.stderr
    db = open_database(firewall.home / "firewall.db")
    try:
        assert agents.live_tokens(db) == {}  # tied to the run's process, which has ended
    finally:
        db.close()
