"""`firewall proxy start --workers N`: counts, the audit chain and the stop are exact across workers.

Each test runs a real proxy of two workers (and, as the control, one of a single process)
and real clients over many connections, so both workers serve: the proof that they did is
the count of audit rows each worker wrote, which the supervisor logs as each one stops.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import SCRIPTS, wait_until
from tests.e2e.test_budgets import _client, _post
from tests.support.fixtures import Firewall
from tests.support.llm_upstream import CHAT, serving_llm_upstream

STOPPED = re.compile(r"worker (\d+) \(pid (\d+)\) stopped: (\d+) audit rows written")


def start(fw: Firewall, upstream_ca_file: Path, workers: int) -> dict:
    args = ["proxy", "start", "--port", "0", "--upstream-ca", str(upstream_ca_file), "--workers", str(workers)]
    fw.run(*args, check=True)
    return json.loads(fw.run("proxy", "status", "--json", check=True).stdout)


def stop(fw: Firewall, status: dict) -> dict[int, int]:
    """`proxy stop`, then: no process of the proxy is left (supervisor, workers, audit children);
    the audit rows each worker wrote, by worker."""
    done = fw.run("proxy", "stop", timeout=60)
    assert done.returncode == 0, done.stderr
    pids = {status["pid"], *status["workers"]}
    assert [pid for pid in pids if _alive(pid)] == []
    assert _processes_of(fw.home) == []  # the audit writers' children are gone too
    rows: dict[int, int] = {}
    for line in fw.proxy_log():
        if found := STOPPED.search(line):
            rows[int(found[1])] = rows.get(int(found[1]), 0) + int(found[3])
    return rows


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _processes_of(home: Path) -> list[str]:
    """Command lines of live processes that name this state folder (a proxy's audit child names its database)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(home) in cmdline and _alive(int(entry.name)):
            found.append(cmdline)
    return found


def load(fw: Firewall, base_url: str, out: Path, threads: int, requests: int, path: str) -> list[list]:
    """`threads` clients, each on its own connection, `requests` each, under one `firewall run`."""
    done = fw.run(
        "run",
        "--agent",
        "load",
        "--",
        sys.executable,
        str(SCRIPTS / "load.py"),
        base_url,
        str(out),
        str(threads),
        path,
        "--requests",
        str(requests),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("workers", [1, 2])
def test_a_limit_admits_exactly_its_amount_across_workers(firewall, upstream, upstream_ca_file, tmp_path, workers):
    firewall.apply(f"host localhost:{upstream.port} {{\n    limit 40 per minute GET /limited\n    allow GET\n}}\n")
    status = start(firewall, upstream_ca_file, workers)
    assert len(status["workers"]) == workers
    records = load(firewall, upstream.base_url, tmp_path / "load.json", threads=16, requests=10, path="/limited")
    codes = [record[3] for record in records]
    rows = stop(firewall, status)
    assert len(codes) == 160 and codes.count(200) == 40 and codes.count(429) == 120, sorted(set(map(str, codes)))
    audit = firewall.audit_rows()
    assert len(audit) == 160 and sum(row["decision"] == "allow" for row in audit) == 40
    verified = firewall.run("audit", "verify")
    assert verified.returncode == 0 and "audit log intact: 160 rows" in verified.stdout, verified.stdout
    if workers == 2:  # both served: the 160 rows were written by the two of them
        assert sorted(rows) == [0, 1] and all(rows.values()) and sum(rows.values()) == 160, rows
    else:
        assert rows == {}


@pytest.mark.parametrize("workers", [1, 2])
def test_status_names_the_policy_version_the_workers_enforce(firewall, upstream, upstream_ca_file, workers):
    # The workers load the policy, not their supervisor: status must not say "none in force".
    firewall.apply(f"host localhost:{upstream.port} {{\n    allow GET\n}}\n")
    status = start(firewall, upstream_ca_file, workers)
    try:
        policy = wait_until(
            lambda: json.loads(firewall.run("proxy", "status", "--json", check=True).stdout).get("policy"), timeout=10
        )
        assert policy and policy["version"] == 1, policy
        shown = firewall.run("proxy", "status", check=True).stdout
        assert "policy: version 1 (sha256 " in shown and "none in force" not in shown, shown
    finally:
        stop(firewall, status)


def test_one_audit_chain_after_concurrent_load_on_both_workers(firewall, upstream, upstream_ca_file, tmp_path):
    firewall.apply(f"host localhost:{upstream.port} {{\n    allow GET\n}}\n")
    status = start(firewall, upstream_ca_file, 2)
    records = load(firewall, upstream.base_url, tmp_path / "load.json", threads=16, requests=40, path="/v1/models")
    rows = stop(firewall, status)
    assert [record[3] for record in records] == [200] * 640
    assert sorted(rows) == [0, 1] and min(rows.values()) > 0 and sum(rows.values()) == 640, rows
    verified = firewall.run("audit", "verify")
    assert verified.returncode == 0 and "audit log intact: 640 rows" in verified.stdout, verified.stdout
    seqs = sorted(row["seq"] for row in firewall.audit_rows())
    assert seqs == list(range(1, 641))  # one chain: no gap, no row twice


def test_a_token_budget_is_exact_across_workers(firewall, test_ca, tmp_path, upstream_ca_file):
    with serving_llm_upstream(test_ca, tmp_path) as llm:
        firewall.apply(f"host localhost:{llm.port} {{\n    limit 1200 tokens per day\n    allow POST\n}}\n")
        status = start(firewall, upstream_ca_file, 2)
        url = f"{llm.base_url}/v1/chat/completions"
        codes = []
        for _ in range(14):  # one connection each: spread over the workers by the kernel
            with _client(firewall, status["port"], "worker") as client:
                codes.append(_post(client, url, {"model": "gpt-4o-mini"})[0])
        used = CHAT[0] + CHAT[1]  # 120 tokens an answer: ten answers spend it
        assert codes == [200] * 10 + [429] * 4
        report = wait_until(lambda: _budget_used(firewall) == 10 * used, timeout=10)
        assert report, _budget_used(firewall)
        rows = stop(firewall, status)
        assert len(llm.seen) == 10  # the refused ones never went upstream
    assert sorted(rows) == [0, 1] and min(rows.values()) > 0, rows


def _budget_used(fw: Firewall) -> int | None:
    done = fw.run("budgets", "--json")
    if done.returncode != 0:
        return None
    budgets = json.loads(done.stdout)["budgets"]
    return sum(use["used"] for budget in budgets for use in budget["use"]) if budgets else None


def test_a_worker_that_dies_is_replaced_and_the_counts_survive(firewall, upstream, upstream_ca_file, tmp_path):
    firewall.apply(f"host localhost:{upstream.port} {{\n    limit 30 per minute GET /limited\n    allow GET\n}}\n")
    status = start(firewall, upstream_ca_file, 2)
    first = load(firewall, upstream.base_url, tmp_path / "a.json", threads=4, requests=5, path="/limited")
    assert [r[3] for r in first] == [200] * 20
    dead = status["workers"][1]
    os.kill(dead, signal.SIGKILL)

    def replaced() -> dict | None:
        now = json.loads(firewall.run("proxy", "status", "--json").stdout)
        return now if now["running"] and dead not in now["workers"] and len(now["workers"]) == 2 else None

    now = wait_until(replaced, timeout=30, interval=0.2)
    assert now, firewall.proxy_log()[-10:]
    assert now["pid"] == status["pid"] and now["workers"][0] == status["workers"][0]
    assert any(f"worker 1 (pid {dead}) died" in line for line in firewall.proxy_log())
    second = load(firewall, upstream.base_url, tmp_path / "b.json", threads=8, requests=5, path="/limited")
    codes = [r[3] for r in second]
    assert codes.count(200) == 10 and codes.count(429) == 30  # the 20 before the death still count
    stop(firewall, {**now, "workers": [*now["workers"], dead]})


def test_workers_stop_when_their_supervisor_is_killed(firewall, upstream, upstream_ca_file):
    firewall.apply(f"host localhost:{upstream.port} {{\n    allow GET\n}}\n")
    status = start(firewall, upstream_ca_file, 2)
    os.kill(status["pid"], signal.SIGKILL)  # no stop, no count service: nothing may serve on
    gone = wait_until(lambda: not any(_alive(pid) for pid in status["workers"]), timeout=30, interval=0.1)
    assert gone, [pid for pid in status["workers"] if _alive(pid)]
    assert wait_until(lambda: _processes_of(firewall.home) == [], timeout=15, interval=0.1)
    assert json.loads(firewall.run("proxy", "status", "--json").stdout)["running"] is False


def test_a_worker_that_cannot_start_stops_the_whole_proxy(firewall, upstream_ca_file):
    bad = upstream_ca_file.with_name("not-a-ca.pem")
    bad.write_text("not a certificate\n")
    done = firewall.run("proxy", "start", "--port", "0", "--upstream-ca", str(bad), "--workers", "2")
    assert done.returncode == 1 and "worker" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(firewall.run("proxy", "status", "--json").stdout)["running"] is False
    time.sleep(0.5)
    assert _processes_of(firewall.home) == []


@pytest.mark.parametrize("workers", ["0", "65", "many"])
def test_a_bad_number_of_workers_is_refused(firewall, workers):
    done = firewall.run("proxy", "start", "--port", "0", "--workers", workers)
    assert done.returncode == 2 and "--workers" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
