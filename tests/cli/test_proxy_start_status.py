"""`proxy status` names the policy version in force (issue 17), and a proxy start that replaces a
deleted or damaged CA says so loudly: agents that trusted the old CA fail TLS until they trust the
new one. Each with its control."""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager

from tests.support.fixtures import Firewall, _kill_if_alive, poll

POLICY = "host api.openai.com {\n    allow GET /v1/models\n}\n"


@contextmanager
def started(firewall: Firewall):
    result = firewall.run("proxy", "start", "--port", "0")
    status = json.loads(firewall.run("proxy", "status", "--json").stdout)
    try:
        yield result
    finally:
        firewall.run("proxy", "stop")
        _kill_if_alive(status.get("pid", 0) or 0)


def _status(firewall: Firewall) -> dict:
    return json.loads(firewall.run("proxy", "status", "--json", check=True).stdout)


def test_status_names_the_policy_version_in_force(firewall: Firewall) -> None:
    with started(firewall) as start:
        assert start.returncode == 0, start.stderr
        assert _status(firewall)["policy"] is None  # the control: none applied yet
        text = firewall.run("proxy", "status", check=True).stdout
        assert "policy: none in force, every request is blocked" in text
        firewall.apply(POLICY)
        history = json.loads(firewall.run("policy", "history", "--json", check=True).stdout)
        sha = next(version["sha256"] for version in history if version["active"])
        status = poll(lambda: [_status(firewall)], lambda s: s[0]["policy"], 10, "proxy status")[0]
        assert status["policy"] == {"version": 1, "sha256": sha}
        assert f"policy: version 1 (sha256 {sha[:16]}) in force" in firewall.run("proxy", "status").stdout
        firewall.apply(POLICY + "# edited\n")
        status = poll(lambda: [_status(firewall)], lambda s: s[0]["policy"]["version"] == 2, 10, "proxy status")[0]
        assert status["policy"]["sha256"] != sha


def test_a_replaced_ca_is_said_loudly_at_proxy_start(firewall: Firewall) -> None:
    with started(firewall) as first:
        assert first.returncode == 0 and "CA" not in first.stderr, first.stderr  # the first CA: nothing to say
    with started(firewall) as again:
        assert again.returncode == 0 and "CA" not in again.stderr, again.stderr  # the control: the same CA
    shutil.rmtree(firewall.home / "ca")
    with started(firewall) as replaced:
        assert replaced.returncode == 0, replaced.stderr
        warning = [line for line in replaced.stderr.splitlines() if "CA" in line]
        assert len(warning) == 1, replaced.stderr
        assert warning[0].startswith("warning: ") and str(firewall.home / "ca") in warning[0]
        assert "fail TLS" in warning[0] and "trust the new" in warning[0]
    log = "\n".join(firewall.proxy_log())
    assert "fail TLS" in log  # the proxy's log says it too, for a proxy no one watched start


def test_a_ca_whose_key_was_deleted_is_replaced_with_the_warning(firewall: Firewall) -> None:
    with started(firewall):
        pass
    (firewall.home / "ca" / "mitmproxy-ca.pem").unlink()  # damaged: the key is gone, the certificate stays
    with started(firewall) as replaced:
        assert replaced.returncode == 0, replaced.stderr
        assert "fail TLS" in replaced.stderr


def test_a_ca_that_cannot_be_read_is_refused_and_left_as_it_was(firewall: Firewall) -> None:
    with started(firewall):
        pass
    key = firewall.home / "ca" / "mitmproxy-ca.pem"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n")
    before = sorted(p.name for p in key.parent.iterdir())
    refused = firewall.run("proxy", "start", "--port", "0", check=False)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert str(firewall.home / "ca") in refused.stderr and "cannot be read" in refused.stderr
    assert "move" in refused.stderr  # the fix
    assert key.read_bytes().endswith(b"garbage\n")  # a corrupt file is left as it was: nothing replaced
    assert sorted(p.name for p in key.parent.iterdir()) == before
