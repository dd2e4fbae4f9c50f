"""`firewall run` with no proxy running: its proxy serves on a socket the run bound, so the command
starts while the proxy is still starting; its requests wait for it, and a proxy that fails is reported.

The first run in a state folder waits for its proxy (that start creates the CA the command trusts);
later runs do not. No timing is asserted: only that requests made at once get through, and what
happens when the proxy cannot start.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from firewall.state.policy_store import NONE_APPLIED
from tests.support.fixtures import REAL_KEY

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

# Asks at once, before the proxy can have imported mitmproxy: the connection waits in the socket's queue.
CLIENT = """\
import sys, httpx
response = httpx.get(sys.argv[1] + "/v1/models", timeout=60)
print(response.status_code)
"""


def setup(fw, upstream, tmp_path):
    fw.add_secret("openai", REAL_KEY, provider="openai")
    fw.apply(POLICY.format(port=upstream.port))
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    return [sys.executable, str(client), upstream.base_url]


def test_first_and_later_runs_get_their_requests_through(firewall, upstream, upstream_ca_file, tmp_path):
    client = setup(firewall, upstream, tmp_path)
    for run in range(3):  # the first creates the CA and waits; the others start the command at once
        result = firewall.run("run", "--upstream-ca", str(upstream_ca_file), "--", *client)
        assert result.returncode == 0, (run, result.stderr)
        assert result.stdout.strip() == "200", (run, result.stdout, result.stderr)
    assert [seen.headers["authorization"] for seen in upstream.seen] == [f"Bearer {REAL_KEY}"] * 3
    assert list((firewall.home / "run").glob("proxy-run-*.json")) == []
    rows = firewall.audit_rows()
    assert [(row["decision"], row["path"]) for row in rows] == [("allow", "/v1/models")] * 3


def test_a_proxy_that_fails_after_the_command_started_is_reported(firewall, upstream, upstream_ca_file, tmp_path):
    client = setup(firewall, upstream, tmp_path)
    assert firewall.run("run", "--upstream-ca", str(upstream_ca_file), "--", *client).returncode == 0
    key = firewall.home / "ca" / "mitmproxy-ca.pem"
    os.chmod(key, 0o644)  # the proxy refuses a CA key others can read; `run` does not look at it itself
    before = len(upstream.seen)
    result = firewall.run("run", "--", *client)  # its request waits for a proxy that then fails
    assert result.returncode == 1
    assert "the proxy failed" in result.stderr and "mitmproxy-ca.pem" in result.stderr, result.stderr
    assert len(upstream.seen) == before
    assert list((firewall.home / "run").glob("proxy-run-*.json")) == []


def test_a_bad_upstream_ca_is_refused_before_the_command_runs(firewall, upstream, tmp_path):
    setup(firewall, upstream, tmp_path)
    marker = tmp_path / "ran"
    not_a_ca = tmp_path / "not-a-ca.pem"
    not_a_ca.write_text("hello\n")
    result = firewall.run(
        "run", "--upstream-ca", str(not_a_ca), "--", sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"
    )
    assert result.returncode == 1
    assert "not a PEM certificate" in result.stderr
    assert not marker.exists()


def test_upstream_ca_a_shared_proxy_runs_without_is_refused_at_run(
    firewall, proxy, upstream, upstream_ca_file, tmp_path
):
    """--upstream-ca is the proxy's: a run that would use a shared proxy without it says so and does not start."""
    client = setup(firewall, upstream, tmp_path)
    control = firewall.run("run", "--no-isolate", "--upstream-ca", str(upstream_ca_file), "--", *client)
    assert control.returncode == 0 and control.stdout.strip() == "200", control.stderr  # the proxy's own CA
    other = tmp_path / "other-ca.pem"
    other.write_bytes(upstream_ca_file.read_bytes())
    result = firewall.run("run", "--no-isolate", "--upstream-ca", str(other), "--", *client)
    assert result.returncode == 2 and result.stdout == ""
    assert f"--upstream-ca {other}" in result.stderr and "firewall proxy stop" in result.stderr
    assert "Traceback" not in result.stderr


# The agent says when it starts (on stderr, as the firewall's warnings): what is said before it is said first.
STARTED = "agent: started"
TELLING_CLIENT = f"import sys\nprint({STARTED!r}, file=sys.stderr, flush=True)\n" + CLIENT


def _ca_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CA" in line]


@pytest.mark.parametrize("damage", ["deleted", "key deleted"])
def test_a_run_whose_own_proxy_replaces_the_ca_says_so_once_before_the_command(
    firewall, upstream, upstream_ca_file, tmp_path, damage
):
    """As `proxy start` says it: the new CA breaks every agent and trust store given the old one."""
    setup(firewall, upstream, tmp_path)
    client = tmp_path / "telling_client.py"
    client.write_text(TELLING_CLIENT)
    command = ["run", "--upstream-ca", str(upstream_ca_file), "--", sys.executable, str(client), upstream.base_url]
    first = firewall.run(*command)  # makes the CA: nothing to say
    again = firewall.run(*command)  # the control: the CA intact
    for result in (first, again):
        assert result.returncode == 0 and result.stdout.strip() == "200", result.stderr
        assert _ca_lines(result.stderr) == [] and "warning" not in result.stderr, result.stderr
    if damage == "deleted":
        shutil.rmtree(firewall.home / "ca")
    else:
        (firewall.home / "ca" / "mitmproxy-ca.pem").unlink()  # the key gone, the certificate left
    replaced = firewall.run(*command)
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.strip() == "200", replaced.stderr  # the agent was given the new CA
    lines = replaced.stderr.splitlines()
    warning = _ca_lines(replaced.stderr)
    assert len(warning) == 1, replaced.stderr
    assert warning[0].startswith("warning: ") and str(firewall.home / "ca") in warning[0]
    assert "fail TLS" in warning[0] and "trust the new" in warning[0]
    assert lines.index(warning[0]) < lines.index(STARTED), replaced.stderr  # before the agent starts
    after = firewall.run(*command)  # said once: the next run keeps the new CA
    assert after.returncode == 0 and _ca_lines(after.stderr) == [], after.stderr


def test_a_run_with_no_policy_in_force_says_so_and_starts_nothing(firewall, tmp_path):
    """`proxy start` warns that it blocks everything until a policy is applied; `run` refuses with the fix."""
    marker = tmp_path / "ran"
    touch = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    refused = firewall.run("run", "--", *touch)
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.splitlines() == [f"error: {NONE_APPLIED}"]
    assert not marker.exists()
    assert list((firewall.home / "run").glob("proxy-run-*.json")) == []
    firewall.apply("host localhost {\n    allow GET /\n}\n")  # the control: a policy in force, nothing to say
    ran = firewall.run("run", "--", *touch)
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr
    assert marker.exists()
