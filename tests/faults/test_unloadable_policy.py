"""An active policy version the proxy cannot load (its content no longer matches its sha256)
must not freeze the rest: the last good policy stays in force and says so once (log, `proxy
status`), a revoked token is refused, a rotated key is used, requests keep being served and
recorded; `policy apply` and `policy rollback` work with a one-line warning, no traceback.
Control: the same load and the same checks before the damage, and after the way out."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from firewall.state import agents
from firewall.state.db import open_database
from tests.faults.support import LoadClient, check_nothing_lost, hammer, log_lines, proxy_status
from tests.support.fixtures import REAL_KEY

pytestmark = pytest.mark.faults

POLICY = """\
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}

host localhost:{port} {{
    inject openai
    allow GET /echo, /v1/models
}}
"""
ROTATED_KEY = "sk-proj-ROTATED0123456789abcdefghijklmnopqrs"
THREADS, PER_THREAD = 6, 10
BOUND = 5.0


def damage_active_version(home: Path) -> int:
    """A new active version whose stored content no longer matches its sha256, in one transaction
    (as if the database had been edited): returns its number."""
    with sqlite3.connect(home / "firewall.db") as db:
        active = db.execute("SELECT version FROM policy_active WHERE id = 1").fetchone()[0]
        row = db.execute("SELECT sha256, sources, compiled FROM policy_versions WHERE version = ?", [active]).fetchone()
        damaged = active + 1
        db.execute(
            "INSERT INTO policy_versions (version, sha256, applied_at, applied_by, note, sources, compiled) "
            "VALUES (?, ?, ?, 'test', 'damaged', ?, ?)",
            [damaged, row[0], time.time(), row[1], row[2].replace("/v1/models", "/v1/modelz")],
        )
        db.execute("UPDATE policy_active SET version = ? WHERE id = 1", [damaged])
    return damaged


def wait_for(predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        time.sleep(0.1)
    return value


def test_an_unloadable_policy_version_keeps_the_last_good_one_and_freezes_nothing_else(firewall, upstream, proxy):
    firewall.add_secret("openai", REAL_KEY, provider="openai")
    firewall.apply(POLICY.format(port=upstream.port))
    load = LoadClient(firewall, proxy.port, upstream)
    doomed = LoadClient(firewall, proxy.port, upstream, agent="doomed")
    paths = ["/echo", "/v1/models"]

    before = hammer(load, paths, THREADS, PER_THREAD)  # control
    assert {(a.status, a.error) for a in before} == {(200, None)}
    with doomed.client() as client:
        assert load.get(client, "/echo").status == 200 and doomed.get(client, "/echo").status == 200

    damaged = damage_active_version(firewall.home)
    wait_for(lambda: log_lines(firewall, "loading the active policy version failed"), "the proxy said it")
    time.sleep(1.0)  # five more polls of the watcher, which must not log again
    during = hammer(load, paths, THREADS, PER_THREAD)
    assert {(a.status, a.error) for a in during} == {(200, None)}  # version 1 stays in force
    status = proxy_status(firewall)
    [problem] = status["problems"]
    assert problem["what"] == "loading the active policy version"
    assert f"policy version {damaged}: stored sha256" in problem["message"]
    assert "policy version 1 stays in force" in problem["message"]
    text = firewall.run("proxy", "status", check=True).stdout
    assert "problem: loading the active policy version failed" in text

    # The tokens and the vault stay current meanwhile.
    db = open_database(firewall.home / "firewall.db")
    try:
        agents.revoke_token(db, doomed.token)
    finally:
        db.close()
    with doomed.client() as client:
        wait_for(lambda: doomed.get(client, "/echo").status == 407, "the revoked token was refused")
    firewall.run(
        "secrets", "add", "openai", "--provider", "openai", "--force", "--stdin", input=ROTATED_KEY + "\n", check=True
    )
    with load.client() as client:
        wait_for(
            lambda: (
                load.get(client, "/echo").status == 200
                and upstream.seen[-1].headers.get("authorization") == f"Bearer {ROTATED_KEY}"
            ),
            "the rotated key was sent",
        )

    rollback = firewall.run("policy", "rollback", "1")
    assert rollback.returncode == 0, rollback.stderr
    assert "Traceback" not in rollback.stderr
    assert f"warning: policy version {damaged}: stored sha256" in rollback.stderr
    wait_for(lambda: log_lines(firewall, "loading the active policy version works again"), "the end was logged")
    assert proxy_status(firewall)["problems"] == []
    after = hammer(load, paths, THREADS, PER_THREAD)  # control: served under the restored version
    assert {(a.status, a.error) for a in after} == {(200, None)}
    proxy.stop()

    for name, answers in (
        ("policy control (before)", before),
        ("policy unloadable", during),
        ("policy control (after rollback)", after),
    ):
        check_nothing_lost(firewall, upstream, answers, name, BOUND)
    said = log_lines(firewall, "loading the active policy version")
    assert len(said) == 2, said  # once when it started, once when it ended: not every 0.2 s
    assert not log_lines(firewall, "Traceback")


def test_policy_commands_on_an_unloadable_version_give_one_line_and_a_way_out(firewall, tmp_path):
    good = firewall.write_policy("good.policy", "host example.com {\n    allow GET /v1/models\n}\n")
    firewall.run("policy", "apply", str(good), check=True)
    damaged = damage_active_version(firewall.home)

    explained = firewall.run("policy", "explain", "GET", "https://example.com/v1/models")
    assert explained.returncode == 1
    assert explained.stderr.count("\n") == 1 and "firewall policy rollback VERSION" in explained.stderr
    rolled_to_damaged = firewall.run("policy", "rollback", str(damaged))
    assert rolled_to_damaged.returncode == 1 and rolled_to_damaged.stderr.count("\n") == 1
    assert "firewall policy apply PATH" in rolled_to_damaged.stderr

    applied = firewall.run("policy", "apply", str(good))  # the way out: apply a good policy
    assert applied.returncode == 0, applied.stderr
    assert applied.stderr.startswith(f"warning: policy version {damaged}: stored sha256")
    assert "applied: version" in applied.stdout
    control = firewall.run("policy", "apply", str(good))  # control: nothing damaged, no warning
    assert control.returncode == 0 and control.stderr == "" and "unchanged" in control.stdout
    explained = firewall.run("policy", "explain", "GET", "https://example.com/v1/models", check=True)
    assert "decision  allow" in explained.stdout
    for result in (explained, rolled_to_damaged, applied):
        assert "Traceback" not in result.stderr
