"""A damaged vault file: the proxy keeps the secrets it last read and goes on serving, says so
once (log, `proxy status`), the CLI's error names the backup and the command that restores
it, and `firewall secrets restore-backup` puts it back. Control: the same load before the
damage and after the restore, and a vault that reads fine is not "restored"."""

from __future__ import annotations

import time

import pytest

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
    allow GET /v1/models
}}
"""
THREADS, PER_THREAD = 6, 10
BOUND = 5.0


def wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        time.sleep(0.1)


def test_a_damaged_vault_keeps_the_last_good_secrets_and_the_backup_restores_it(firewall, upstream, proxy):
    firewall.add_secret("openai", REAL_KEY, provider="openai")
    firewall.apply(POLICY.format(port=upstream.port))
    vault, backup = firewall.home / "vault.json", firewall.home / "vault.json.bak"
    assert backup.read_bytes() == vault.read_bytes() and backup.stat().st_mode & 0o777 == 0o600
    load = LoadClient(firewall, proxy.port, upstream)
    sent = lambda answers: {upstream_auth(upstream, a.tag) for a in answers}  # noqa: E731

    refused = firewall.run("secrets", "restore-backup")  # control: a vault that reads fine is left alone
    assert refused.returncode == 1 and "reads fine; nothing to restore" in refused.stderr
    before = hammer(load, ["/v1/models"], THREADS, PER_THREAD)
    assert {(a.status, a.error) for a in before} == {(200, None)} and sent(before) == {f"Bearer {REAL_KEY}"}

    vault.write_bytes(b'{"format": "agent-firewall-vault", "trunc')  # damaged (a bad disk, a hand edit)
    wait_for(lambda: log_lines(firewall, "reading the vault failed"), "the proxy said it")
    time.sleep(1.0)  # five more polls of the watcher, which must not log again
    during = hammer(load, ["/v1/models"], THREADS, PER_THREAD)
    assert {(a.status, a.error) for a in during} == {(200, None)} and sent(during) == {f"Bearer {REAL_KEY}"}
    [problem] = proxy_status(firewall)["problems"]
    assert problem["what"] == "reading the vault" and "keeps the secrets it last read" in problem["message"]

    listed = firewall.run("secrets", "list")
    assert listed.returncode == 1 and listed.stderr.count("\n") == 1, listed.stderr
    assert f"the last good copy is {backup}" in listed.stderr
    assert "firewall secrets restore-backup" in listed.stderr and "Traceback" not in listed.stderr

    restored = firewall.run("secrets", "restore-backup")
    assert restored.returncode == 0, restored.stderr
    assert "1 secret(s)" in restored.stdout
    assert (firewall.home / "vault.json.damaged").exists()
    wait_for(lambda: log_lines(firewall, "reading the vault works again"), "the end was logged")
    assert proxy_status(firewall)["problems"] == []
    assert firewall.run("secrets", "list", check=True).stdout.count("openai") >= 1
    after = hammer(load, ["/v1/models"], THREADS, PER_THREAD)
    assert {(a.status, a.error) for a in after} == {(200, None)} and sent(after) == {f"Bearer {REAL_KEY}"}
    proxy.stop()

    for name, answers in (
        ("vault control (before)", before),
        ("vault damaged", during),
        ("vault control (after restore)", after),
    ):
        check_nothing_lost(firewall, upstream, answers, name, BOUND)
    said = log_lines(firewall, "reading the vault")
    assert len([line for line in said if "failed" in line or "works again, after" in line]) == 2, said
    assert not log_lines(firewall, "Traceback")


def upstream_auth(upstream, tag: str) -> str | None:
    [seen] = [s for s in upstream.seen if s.path.endswith(f"tag={tag}")]
    return seen.headers.get("authorization")


def test_without_a_backup_the_error_says_how_to_start_again(firewall):
    firewall.add_secret("openai", REAL_KEY, provider="openai")
    (firewall.home / "vault.json.bak").unlink()  # a vault written before backups existed
    (firewall.home / "vault.json").write_bytes(b"not json")
    listed = firewall.run("secrets", "list")
    assert listed.returncode == 1 and listed.stderr.count("\n") == 1
    assert "there is no backup" in listed.stderr and "firewall secrets add NAME" in listed.stderr
    restored = firewall.run("secrets", "restore-backup")
    assert restored.returncode == 1 and "there is no backup of the vault" in restored.stderr
    assert (firewall.home / "vault.json").read_bytes() == b"not json"  # a failed command changes nothing
