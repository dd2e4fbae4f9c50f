"""Real clients as agents under `firewall run`, through one shared proxy for the module.

Each of the `openai` SDK, `curl` and `httpx` finds the proxy and our CA in the
environment `firewall run` gives it (scripts/client.py sets neither). The
upstream is a local HTTPS server with a trustme certificate.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from tests.e2e.helpers import SCRIPTS, rule_line, run_client, wait_until
from tests.support.fixtures import REAL_KEY

CLIENTS = ["openai", "curl", "httpx"]

POLICY = """\
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}

host localhost:{port} {{
    inject openai
    limit 1 per hour per agent when agent matches "limited-*"
    block /v1/files, /v1/files/**
    block /ws/blocked, /ws/blocked/**
    allow GET /v1/models, /ws/**
    allow POST /v1/chat/completions
}}

host localhost:{untrusted_port} {{
    allow GET
}}

host localhost:{closed_port} {{
    allow GET
}}
"""


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A port on loopback nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def setup(module_firewall, module_upstream, untrusted_upstream, closed_port, module_proxy):
    fw = module_firewall
    fw.add_secret("openai", REAL_KEY, provider="openai")
    text = POLICY.format(port=module_upstream.port, untrusted_port=untrusted_upstream.port, closed_port=closed_port)
    path = fw.write_policy("clients.policy", text)
    fw.run("policy", "apply", str(path), check=True)
    return fw, module_upstream, text, path


@pytest.mark.parametrize("client", CLIENTS)
def test_allowed_call_reaches_upstream_with_the_real_key_the_agent_never_holds(setup, client, tmp_path):
    """The agent dumps its environment and /proc/self/cmdline (for curl: the wrapper that starts curl
    with that same environment and the arguments it records); none of it holds the key."""
    fw, upstream, _, _ = setup
    before = len(upstream.seen)
    run = run_client(fw, client, upstream.base_url, "models", agent=f"key-{client}", out=tmp_path / "out.json")
    assert run.code == 0, run.stderr
    [result] = run.results
    assert result["status"] == 200, result
    assert json.loads(result["body"])["data"][0]["id"] == "gpt-4o-mini"
    assert len(upstream.seen) == before + 1
    assert upstream.seen[-1].path == "/v1/models"
    assert upstream.seen[-1].headers["authorization"] == f"Bearer {REAL_KEY}"
    assert "proxy-authorization" not in upstream.seen[-1].headers
    # The agent's environment, arguments and everything it saw hold a placeholder at most.
    assert run.env["OPENAI_API_KEY"] != REAL_KEY
    assert REAL_KEY not in run.dump
    assert REAL_KEY[8:24] not in run.dump  # not even a piece of it


@pytest.mark.parametrize("client", CLIENTS)
def test_blocked_path_gets_403_with_the_json_reason_and_rule(setup, client, tmp_path):
    fw, upstream, text, path = setup
    before = len(upstream.seen)
    run = run_client(fw, client, upstream.base_url, "files", agent=f"block-{client}", out=tmp_path / "out.json")
    [result] = run.results
    assert result["status"] == 403, result
    assert result["headers"]["content-type"] == "application/json"
    error = json.loads(result["body"])["error"]
    assert error["type"] == "policy_blocked"
    assert error["rule"] == f"{path.name}:{rule_line(text, 'block /v1/files')}"
    assert error["request_id"] == result["headers"]["x-firewall-request-id"]
    assert len(upstream.seen) == before  # nothing went upstream


@pytest.mark.parametrize("client", CLIENTS)
def test_limit_gets_429_with_retry_after(setup, client, tmp_path):
    fw, upstream, text, path = setup
    before = len(upstream.seen)
    run = run_client(
        fw, client, upstream.base_url, "models", "models", agent=f"limited-{client}", out=tmp_path / "out.json"
    )
    first, second = run.results
    assert first["status"] == 200, first
    assert second["status"] == 429, second
    assert 3500 <= int(second["headers"]["retry-after"]) <= 3600  # the hour's window, in seconds
    error = json.loads(second["body"])["error"]
    assert error["type"] == "rate_limited"
    assert error["rule"] == f"{path.name}:{rule_line(text, 'limit 1 per hour')}"
    assert len(upstream.seen) == before + 1  # the refused one never went upstream


@pytest.mark.parametrize("client", CLIENTS)
def test_stream_arrives_event_by_event(setup, client, tmp_path):
    """The upstream sends its events 0.3 s apart; the agent must see them as they come, not all at the end."""
    fw, upstream, _, _ = setup
    run = run_client(fw, client, upstream.base_url, "stream", agent=f"stream-{client}", out=tmp_path / "out.json")
    [result] = run.results
    assert result["status"] == 200, result
    times = [t for t, _ in result["events"]]
    texts = "".join(text for _, text in result["events"])
    assert "hello" in texts and "upstream" in texts
    assert len(times) >= 3, result["events"]
    assert times[-1] - times[0] >= 0.4, f"the events arrived together: {result['events']}"
    assert upstream.seen[-1].headers["authorization"] == f"Bearer {REAL_KEY}"


@pytest.mark.parametrize("client", CLIENTS)
def test_client_without_proxy_credentials_gets_407(setup, module_proxy, client, tmp_path):
    """Pointed at the proxy port directly, with no `agent:token`: the CONNECT is refused with 407."""
    fw, upstream, _, _ = setup
    bundle = str(fw.home / "run" / "ca-bundle.pem")
    proxy_url = f"http://127.0.0.1:{module_proxy.port}"
    env = {k: v for k, v in fw.env.items() if not k.startswith("FIREWALL_")}
    env |= {name: proxy_url for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")}
    env |= {name: bundle for name in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")}
    env["OPENAI_API_KEY"] = "sk-placeholder"
    before = len(upstream.seen)
    run = run_client(fw, client, upstream.base_url, "models", agent="-", out=tmp_path / "out.json", env=env)
    [result] = run.results
    if client == "curl":
        assert result["status"] == 407, result  # curl records the CONNECT's answer
    else:  # the SDKs raise a proxy error for a refused CONNECT
        assert result["status"] is None
    assert "407" in result["error"], result
    assert len(upstream.seen) == before


@pytest.mark.parametrize("client", CLIENTS)
def test_upstream_with_an_untrusted_certificate_is_refused(setup, untrusted_upstream, client, tmp_path):
    fw, _, _, _ = setup
    run = run_client(
        fw, client, untrusted_upstream.base_url, "get:/anything", agent=f"untrusted-{client}", out=tmp_path / "out.json"
    )
    [result] = run.results
    assert result["status"] == 502, result
    error = json.loads(result["body"])["error"]  # the JSON body of every refusal, not mitmproxy's HTML page
    assert error["type"] == "upstream_tls_error" and "certificate verify failed" in error["message"].lower()
    assert untrusted_upstream.seen == []  # the TLS handshake failed: no request reached it
    rows = wait_until(lambda: [r for r in fw.audit_rows() if r["agent"] == f"untrusted-{client}"], timeout=5)
    assert [(r["decision"], r["reason"], r["upstream_status"], r["request_id"]) for r in rows] == [
        ("error", "upstream_tls_error", None, error["request_id"])
    ]
    assert "certificate verify failed" in rows[0]["detail"].lower()


@pytest.mark.parametrize("client", ["curl", "httpx"])
def test_an_upstream_that_refuses_the_connection_is_answered_in_json(setup, closed_port, client, tmp_path):
    fw, _, _, _ = setup
    url = f"https://localhost:{closed_port}"
    run = run_client(fw, client, url, "get:/anything", agent=f"closed-{client}", out=tmp_path / "out.json")
    [result] = run.results
    assert result["status"] == 502, result
    error = json.loads(result["body"])["error"]
    assert error["type"] == "upstream_unreachable" and error["request_id"].startswith("req_")
    rows = wait_until(lambda: [r for r in fw.audit_rows() if r["agent"] == f"closed-{client}"], timeout=5)
    assert [(r["decision"], r["reason"]) for r in rows] == [("error", "upstream_unreachable")]


def test_plain_http_request_without_proxy_credentials_gets_407_json(module_proxy, setup):
    """An absolute-form plain-HTTP request (no CONNECT) is answered with the 407 JSON body."""
    _, upstream, _, _ = setup
    before = len(upstream.seen)
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "--noproxy",
            "",
            "-x",
            f"http://127.0.0.1:{module_proxy.port}",
            "-D",
            "-",
            f"http://localhost:{upstream.port}/v1/models",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    head, _, body = done.stdout.partition("\n\n")  # text mode: CRLF read as LF
    assert head.startswith("HTTP/1.1 407"), done.stdout
    assert 'proxy-authenticate: basic realm="agent-firewall"' in head.lower().splitlines()
    assert json.loads(body)["error"]["type"] == "proxy_auth_required"
    assert len(upstream.seen) == before


def run_websocket(fw, url: str, agent: str, out) -> dict:
    done = fw.run("run", "--agent", agent, "--", sys.executable, str(SCRIPTS / "ws_client.py"), url, str(out))
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def test_websocket_upgrade_is_carried_with_the_credential_in_the_handshake(setup, tmp_path):
    fw, upstream, _, _ = setup
    report = run_websocket(fw, f"{upstream.base_url}/ws/chat", "ws", tmp_path / "ws.json")
    assert report["status"] == 101, report
    assert report["echo"] == "echo: ping through the firewall"
    assert report["close_code"] == 1000
    handshake = upstream.seen[-1]
    assert (handshake.method, handshake.path) == ("GET", "/ws/chat")
    assert handshake.headers["upgrade"].lower() == "websocket"
    assert handshake.headers["authorization"] == f"Bearer {REAL_KEY}"
    rows = wait_until(lambda: [r for r in fw.audit_rows() if r["agent"] == "ws"], timeout=5)
    assert [(r["decision"], r["path"], r["upstream_status"]) for r in rows] == [("allow", "/ws/chat", 101)]


def test_websocket_upgrade_to_a_blocked_path_gets_the_426_json(setup, tmp_path):
    """426 Upgrade Required, not 403: a client that can also use plain HTTP (Codex) falls back at once."""
    fw, upstream, text, path = setup
    before = len(upstream.seen)
    report = run_websocket(fw, f"{upstream.base_url}/ws/blocked/feed", "ws-blocked", tmp_path / "ws.json")
    assert report["status"] == 426, report
    error = json.loads(report["body"])["error"]
    assert error["type"] == "policy_blocked"
    assert error["rule"] == f"{path.name}:{rule_line(text, 'block /ws/blocked')}"
    assert len(upstream.seen) == before
