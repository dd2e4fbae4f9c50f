"""Inside an isolated `firewall run` the proxy is the only way out: clients that ignore the proxy
variables get a fast, plain connection error and nothing arrives outside. Each way out has its
control: the same client under `--no-isolate` gets through (so a green test is never vacuous), and
the same request through the proxy is answered, decided and audited."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.isolation.support import (
    ESCAPE_TIME,
    SCRIPTS,
    Listeners,
    escape,
    node,
    setup_home,
)
from tests.support.fixtures import REAL_KEY

REFUSED_DIRECTLY = ("tcp_loopback", "tcp_other_address", "tcp_ipv6_loopback", "dns_system_resolver", "https_direct")


@pytest.fixture(scope="module")
def shared(module_firewall, module_upstream, module_proxy):
    setup_home(module_firewall, module_upstream)
    return module_firewall, module_upstream


@pytest.fixture
def listeners():
    opened = Listeners()
    yield opened
    opened.close()


def test_isolated_agent_has_no_way_out_but_the_proxy(shared, listeners, tmp_path):
    fw, upstream = shared
    before = len(upstream.seen)
    done, results = escape(fw, listeners, upstream, tmp_path / "out.json")
    assert done.returncode == 0, done.stderr
    for name in REFUSED_DIRECTLY:
        assert not results[name]["ok"], (name, results[name])
        assert results[name]["seconds"] < ESCAPE_TIME, (name, results[name])
    assert "ConnectionRefused" in results["tcp_loopback"]["error"]
    assert listeners.accepted == 0
    # Sending a datagram "works" on the sandbox's own loopback: nothing arrives outside.
    assert listeners.datagrams(listeners.udp) == [] and listeners.datagrams(listeners.dns) == []
    # The control inside the same run: through the proxy, answered with the real key injected.
    assert results["https_through_proxy"] == {**results["https_through_proxy"], "ok": True, "detail": 200}
    assert len(upstream.seen) == before + 1
    assert upstream.seen[before].headers["authorization"] == f"Bearer {REAL_KEY}"
    rows = fw.audit_rows_once(
        lambda rows: any(
            r["path"] == "/v1/models" and r["agent"] == "default" and r["decision"] == "allow" for r in rows
        )
    )
    row = [r for r in rows if r["path"] == "/v1/models"][-1]
    assert row["detail"] is None or "not isolated" not in row["detail"]


def test_the_same_clients_get_out_without_isolation(shared, listeners, tmp_path):
    """The control: under --no-isolate each direct attempt reaches its listener (a warning says so), and
    the audit row of its proxied request is marked."""
    fw, upstream = shared
    done, results = escape(fw, listeners, upstream, tmp_path / "out.json", "--no-isolate")
    assert done.returncode == 0, done.stderr
    assert "without isolation" in done.stderr
    assert results["tcp_loopback"]["ok"] and listeners.accepted >= 1
    assert listeners.datagrams(listeners.udp) == [b"escape-udp"]
    assert len(listeners.datagrams(listeners.dns)) == 1
    assert not results["https_direct"]["ok"] and "CERTIFICATE" in results["https_direct"]["error"].upper()
    assert results["https_through_proxy"]["detail"] == 200
    rows = fw.audit_rows_once(lambda rows: any((r["detail"] or "").startswith("run not isolated") for r in rows))
    marked = [r for r in rows if (r["detail"] or "").startswith("run not isolated")]
    assert marked[-1]["path"] == "/v1/models" and marked[-1]["decision"] == "allow"


def _curl(fw, upstream, *run_args: str, direct: bool) -> subprocess.CompletedProcess:
    flags = ["--noproxy", "*"] if direct else []
    return fw.run(
        "run",
        *run_args,
        "--",
        "curl",
        "-sS",
        "-m",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        *flags,
        f"{upstream.base_url}/v1/models",
    )


def test_curl_noproxy_gets_a_connection_error(shared):
    fw, upstream = shared
    before = len(upstream.seen)
    direct = _curl(fw, upstream, direct=True)
    assert direct.returncode == 7, direct.stderr  # curl: couldn't connect
    assert "Couldn't connect" in direct.stderr or "Failed to connect" in direct.stderr
    assert len(upstream.seen) == before
    proxied = _curl(fw, upstream, direct=False)  # the control
    assert proxied.returncode == 0 and proxied.stdout == "200", proxied.stderr
    assert len(upstream.seen) == before + 1
    outside = _curl(fw, upstream, "--no-isolate", direct=True)  # the control of the refusal: a direct path
    assert outside.returncode == 60, outside.stderr  # got to the upstream; only its test CA is not trusted


@pytest.mark.skipif(node() is None, reason="node is not installed")
def test_node_fetch_and_https_get_get_a_connection_error(shared, tmp_path):
    """Node 20's fetch and https.get ignore HTTPS_PROXY: isolated, both are refused at once; under
    --no-isolate both reach the upstream (refused there only for its untrusted test CA). The run's Node
    preload (NODE_OPTIONS) would give them the proxy, so here it is removed: a Node that does not load
    it stands for any client that ignores the proxy (tests/clients shows the preload at work)."""
    fw, upstream = shared
    before = len(upstream.seen)
    results = {}
    for mode, run_args in (("isolated", ()), ("not_isolated", ("--no-isolate",))):
        out = tmp_path / f"{mode}.json"
        script = str(SCRIPTS / "fetch_direct.js")
        done = fw.run(
            "run",
            *run_args,
            "--",
            "env",
            "-u",
            "NODE_OPTIONS",
            "node",
            script,
            f"{upstream.base_url}/v1/models",
            str(out),
        )
        assert done.returncode == 0, done.stderr
        results[mode] = json.loads(out.read_text())
    for client in ("fetch", "https"):
        assert "ECONNREFUSED" in results["isolated"][client]["error"], results
        assert results["isolated"][client]["ms"] < ESCAPE_TIME * 1000, results
        assert "certificate" in results["not_isolated"][client]["error"], results
    assert len(upstream.seen) == before  # nothing was sent by either, TLS never completed
