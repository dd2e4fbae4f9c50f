"""Changes a user would not notice are said out loud: removing a secret the policy injects, a proxy
started with no policy in force. Each with its control, where nothing is said."""

from __future__ import annotations

import json

from tests.support.fixtures import REAL_KEY, Firewall, _kill_if_alive

INJECTS = """\
credential openai {
    secret "openai"
    header Authorization = "Bearer {secret}"
}

host api.openai.com {
    inject openai
    allow GET /v1/models
}
"""


def test_removing_a_secret_the_policy_injects_warns(firewall: Firewall) -> None:
    firewall.add_secret("openai", REAL_KEY, provider="openai")
    firewall.add_secret("spare", "spare-value")
    firewall.apply(INJECTS)
    control = firewall.run("secrets", "rm", "spare")
    assert control.returncode == 0 and "warning" not in control.stderr, control.stderr
    result = firewall.run("secrets", "rm", "openai")
    assert result.returncode == 0
    assert 'warning: the policy in force injects "openai"' in result.stderr


def _start(firewall: Firewall):
    result = firewall.run("proxy", "start", "--port", "0")
    status = json.loads(firewall.run("proxy", "status", "--json").stdout)
    return result, status


def test_proxy_start_without_a_policy_in_force_warns(firewall: Firewall) -> None:
    result, status = _start(firewall)
    try:
        assert result.returncode == 0, result.stderr
        assert "no policy is in force" in result.stderr and "firewall policy apply" in result.stderr
    finally:
        firewall.run("proxy", "stop")
        _kill_if_alive(status.get("pid", 0) or 0)
    firewall.apply("host api.openai.com {\n    allow GET /v1/models\n}\n")
    control, status = _start(firewall)
    try:
        assert control.returncode == 0 and "no policy" not in control.stderr, control.stderr
    finally:
        firewall.run("proxy", "stop")
        _kill_if_alive(status.get("pid", 0) or 0)


def test_proxy_stop_removes_its_upstream_trust_bundle(firewall: Firewall, upstream_ca_file) -> None:
    started = firewall.run("proxy", "start", "--port", "0", "--upstream-ca", str(upstream_ca_file))
    status = json.loads(firewall.run("proxy", "status", "--json").stdout)
    try:
        assert started.returncode == 0, started.stderr
        assert list((firewall.home / "run").glob("upstream-trust-*.pem"))  # the control: it was made
    finally:
        firewall.run("proxy", "stop")
        _kill_if_alive(status.get("pid", 0) or 0)
    assert list((firewall.home / "run").glob("upstream-trust-*.pem")) == []
