"""Changing the policy of a running proxy: a broken policy changes nothing, a new version takes
effect within a second even under load, and history/show/rollback bring versions back."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.e2e.helpers import SCRIPTS, rule_line, run_client, wait_until
from tests.support.fixtures import REAL_KEY

POLICY = """\
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}

host localhost:{port} {{
    inject openai
    {flip_rule} GET /flip
    allow GET /v1/models
}}
"""


@pytest.fixture(scope="module")
def swap(module_firewall, module_upstream, module_proxy):
    fw = module_firewall
    fw.add_secret("openai", REAL_KEY, provider="openai")
    open_path = fw.write_policy("open.policy", POLICY.format(port=module_upstream.port, flip_rule="allow"))
    closed_path = fw.write_policy("closed.policy", POLICY.format(port=module_upstream.port, flip_rule="block"))
    return fw, module_upstream, open_path, closed_path


def flip_status(fw, upstream, tmp_path, agent="probe") -> int:
    run = run_client(fw, "httpx", upstream.base_url, "get:/flip", agent=agent, out=tmp_path / f"{agent}.json")
    return run.results[0]["status"]


def active_version(fw) -> dict:
    return json.loads(fw.run("policy", "show", "--json", check=True).stdout)


def test_broken_policy_is_refused_and_the_previous_version_keeps_deciding(swap, tmp_path):
    fw, upstream, open_path, _ = swap
    fw.run("policy", "apply", str(open_path), check=True)
    in_force = active_version(fw)
    text = open_path.read_text().replace("allow GET /flip", "allow GET /flip when jsn.x == 1")
    broken = fw.write_policy("broken.policy", text)
    result = fw.run("policy", "apply", str(broken))
    assert result.returncode == 2
    expected = f'{broken}:{rule_line(text, "jsn.x")}:26: unknown field "jsn.x"; did you mean "json.x"?'
    assert result.stderr.startswith(expected), result.stderr
    assert result.stdout == ""
    assert active_version(fw)["version"] == in_force["version"]
    assert flip_status(fw, upstream, tmp_path) == 200


def test_new_version_takes_effect_within_a_second_under_load(swap, tmp_path):
    """8 httpx clients (one agent under `firewall run`) hammer /flip and /v1/models while the policy
    that blocks /flip is applied. No request may fail for any other reason than the new 403, and every
    request sent more than 1 s after `policy apply` returned must see the new version."""
    fw, upstream, open_path, closed_path = swap
    fw.run("policy", "apply", str(open_path), check=True)
    out, ready, stop = tmp_path / "load.json", tmp_path / "ready", tmp_path / "stop"
    load = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firewall",
            "run",
            "--agent",
            "load",
            "--",
            sys.executable,
            str(SCRIPTS / "load.py"),
            upstream.base_url,
            str(out),
            "8",
            "/flip,/v1/models",
            "--ready",
            str(ready),
            "--stop",
            str(stop),
        ],
        env=fw.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: ready.exists() or load.poll() is not None, timeout=30)
        assert ready.exists(), load.communicate(timeout=5)
        apply_started = time.time()
        fw.run("policy", "apply", str(closed_path), check=True)
        applied = time.time()
        stop.write_text(str(applied + 2.0))  # keep the load going 2 s past the apply
        _, stderr = load.communicate(timeout=30)
        assert load.returncode == 0, stderr
    finally:
        if load.poll() is None:
            load.kill()
            load.wait(timeout=5)
    records = json.loads(out.read_text())
    answers = {(r[3], r[4], r[5]) for r in records}  # (status, refusal type, client error)
    assert answers <= {(200, None, None), (403, "policy_blocked", None)}, answers
    assert {r[3] for r in records if r[0] == "/v1/models"} == {200}
    flips = [r for r in records if r[0] == "/flip"]
    assert all(r[3] == 200 for r in flips if r[2] < apply_started), "blocked before the new version existed"
    last_allowed = max(r[1] for r in flips if r[3] == 200)
    assert last_allowed - applied < 1.0, f"/flip still allowed {last_allowed - applied:.2f} s after apply returned"
    assert any(r[1] > applied + 1.0 for r in flips)  # the load went on long enough to tell
    in_flight = [r for r in records if r[1] < applied and r[2] > apply_started]
    print(
        f"first 403 sent {min(r[1] for r in flips if r[3] == 403) - applied:+.3f} s after apply returned, "
        f"last 200 sent {last_allowed - applied:+.3f} s; {len(records)} requests, {len(in_flight)} during the apply"
    )
    assert len(in_flight) >= 8  # the swap happened under load, every client busy


def test_history_show_and_rollback(swap, tmp_path):
    fw, upstream, open_path, closed_path = swap
    fw.run("policy", "apply", str(open_path), "--note", "open flip", check=True)
    fw.run("policy", "apply", str(closed_path), "--note", "close flip", check=True)
    history = json.loads(fw.run("policy", "history", "--json", check=True).stdout)
    *_, opened, closed = history
    assert (opened["note"], opened["active"]) == ("open flip", False)
    assert (closed["note"], closed["active"]) == ("close flip", True)
    shown = active_version(fw)
    assert shown["version"] == closed["version"] and shown["sha256"] == closed["sha256"]
    assert [s["text"] for s in shown["sources"]] == [closed_path.read_text()]
    text = fw.run("policy", "history", check=True).stdout.splitlines()
    assert text[-2].startswith(f"  version {opened['version']} ")
    assert text[-1].startswith(f"* version {closed['version']} ")  # the one in force is marked
    assert wait_until(lambda: flip_status(fw, upstream, tmp_path, "before") == 403, timeout=1)

    rolled = fw.run("policy", "rollback", check=True)
    assert "rolled back" in rolled.stdout
    after = json.loads(fw.run("policy", "history", "--json", check=True).stdout)
    assert len(after) == len(history) + 1
    assert after[-1]["active"] and after[-1]["sha256"] == opened["sha256"]
    assert wait_until(lambda: flip_status(fw, upstream, tmp_path, "after") == 200, timeout=1)
