"""`firewall run`: exit codes, the proxy it uses or starts, `--policy`, the child's environment,
the agent's proxy credentials, and a Node agent.

Most tests share one proxy for the module; the two that need a proxy of their own
(`run` with none running, `run --policy`) start exactly one each.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.helpers import SCRIPTS, database_bytes, rule_line, run_client, wait_until
from tests.support.fixtures import REAL_KEY

APPLIED = """\
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}

host localhost:{port} {{
    inject openai
    allow GET /v1/models
}}
"""

PINNED = """\
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}

host localhost:{port} {{
    inject openai
    block GET /v1/models
    allow POST /v1/chat/completions
}}
"""

PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
BUNDLE_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "CODEX_CA_CERTIFICATE", "GIT_SSL_CAINFO")


def setup_home(fw, upstream) -> None:
    fw.add_secret("openai", REAL_KEY, provider="openai")
    fw.apply(APPLIED.format(port=upstream.port))


@pytest.fixture(scope="module")
def shared(module_firewall, module_upstream, module_proxy):
    setup_home(module_firewall, module_upstream)
    return module_firewall, module_upstream, module_proxy


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def through_proxy(proxy_url: str, bundle: Path, url: str) -> int | str:
    """The status of GET `url` through `proxy_url` with httpx, or the proxy error's text."""
    context = ssl.create_default_context(cafile=str(bundle))
    try:
        with httpx.Client(proxy=proxy_url, verify=context, trust_env=False, timeout=10) as client:
            return client.get(url).status_code
    except httpx.ProxyError as exc:
        return str(exc)


class Held:
    """A `firewall run` whose command (scripts/hold.py, after `before` if given) waits for the test."""

    def __init__(self, fw, tmp_path: Path, *run_args: str, before: list[str] | None = None):
        self.ready, self.go = tmp_path / "ready.json", tmp_path / "go"
        hold = [sys.executable, str(SCRIPTS / "hold.py"), str(self.ready), str(self.go)]
        command = hold if before is None else ["sh", "-c", f"{shlex.join(before)} && exec {shlex.join(hold)}"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "firewall", "run", *run_args, "--", *command],
            env=fw.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self) -> dict[str, str]:
        assert wait_until(lambda: self.ready.exists() or self.process.poll() is not None, timeout=30)
        assert self.ready.exists(), self.process.communicate(timeout=5)
        return json.loads(self.ready.read_text())

    def release(self) -> subprocess.CompletedProcess:
        self.go.touch()
        stdout, stderr = self.process.communicate(timeout=30)
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, stdout, stderr)

    def __enter__(self) -> Held:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process.poll() is None:  # a failed test: let the run end, or end it
            self.go.touch()
            try:
                self.process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate(timeout=5)


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["true"], 0),
        (["sh", "-c", "exit 3"], 3),
        (["sh", "-c", "kill -TERM $$"], 128 + 15),
        (["sh", "-c", "kill -KILL $$"], 128 + 9),
    ],
    ids=["exit-0", "exit-3", "sigterm", "sigkill"],
)
def test_exit_code_is_the_commands(shared, command, code):
    fw, _, _ = shared
    assert fw.run("run", "--", *command).returncode == code


@pytest.fixture(scope="module")
def env_run(shared, tmp_path_factory):
    """One agent run that dumps its environment, started from a parent environment full of traps."""
    fw, upstream, _ = shared
    parent = {
        "NO_PROXY": "localhost",
        "no_proxy": "127.0.0.1",
        "HTTPS_PROXY": "http://elsewhere:1",
        "FIREWALL_EXTRA": "mine",
        "LEAKY_VAR": f"token={REAL_KEY}",
    }
    out = tmp_path_factory.mktemp("env") / "out.json"
    command = [sys.executable, str(SCRIPTS / "client.py"), "httpx", upstream.base_url, str(out)]
    done = fw.run("run", "--agent", "envcheck", "--", *command, env=parent)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def test_child_environment_points_every_client_at_the_proxy(shared, env_run):
    fw, _, proxy = shared
    env = env_run["env"]
    proxy_url = env["HTTPS_PROXY"]
    assert re.fullmatch(rf"http://envcheck:[A-Za-z0-9_-]+@127\.0\.0\.1:{proxy.port}", proxy_url), proxy_url
    assert {name: env.get(name) for name in PROXY_VARIABLES} == dict.fromkeys(PROXY_VARIABLES, proxy_url)
    assert "NO_PROXY" not in env and "no_proxy" not in env
    assert env["NODE_USE_ENV_PROXY"] == "1"
    bundle = str(fw.home / "run" / "ca-bundle.pem")
    assert {name: env.get(name) for name in BUNDLE_VARIABLES} == dict.fromkeys(BUNDLE_VARIABLES, bundle)
    assert env["NODE_EXTRA_CA_CERTS"] == str(fw.home / "run" / "ca-cert.pem")
    assert env["OPENAI_API_KEY"].startswith("sk-") and env["OPENAI_API_KEY"] != REAL_KEY
    assert [name for name in env if name.startswith("FIREWALL_")] == []
    assert "LEAKY_VAR" not in env  # a variable holding a vault value is not passed on
    assert REAL_KEY not in json.dumps(env_run)


def test_ca_bundle_holds_the_system_roots_and_our_ca_but_no_private_key(shared, env_run):
    fw, _, _ = shared
    bundle = Path(env_run["env"]["SSL_CERT_FILE"]).read_text()
    ours = (fw.home / "ca" / "mitmproxy-ca-cert.pem").read_text().strip()
    system = Path("/etc/ssl/certs/ca-certificates.crt").read_text()
    assert ours in bundle
    assert bundle.count("BEGIN CERTIFICATE") == system.count("BEGIN CERTIFICATE") + 1
    assert "PRIVATE KEY" not in bundle
    node_ca = Path(env_run["env"]["NODE_EXTRA_CA_CERTS"]).read_text()
    assert node_ca.strip() == ours and "PRIVATE KEY" not in node_ca


def test_token_is_revoked_when_the_run_ends(shared, tmp_path):
    """`run` revokes its token as the command ends; the proxy re-reads live tokens every 200 ms,
    so the token is refused within a second (here: polled from the moment `run` returned)."""
    fw, upstream, _ = shared
    out = tmp_path / "out.json"
    fw.run("run", "--", sys.executable, str(SCRIPTS / "client.py"), "httpx", upstream.base_url, str(out), check=True)
    proxy_url = json.loads(out.read_text())["env"]["HTTPS_PROXY"]
    token = urlsplit(proxy_url).password
    bundle = fw.home / "run" / "ca-bundle.pem"
    answer = wait_until(
        lambda: "407" in str(through_proxy(proxy_url, bundle, f"{upstream.base_url}/v1/models")), timeout=1.0
    )
    assert answer, through_proxy(proxy_url, bundle, f"{upstream.base_url}/v1/models")
    assert token.encode() not in database_bytes(fw.home)  # only its hash is stored


def test_token_with_another_agents_name_gets_407(shared, tmp_path):
    fw, upstream, _ = shared
    with Held(fw, tmp_path, "--agent", "alice") as held:
        proxy_url = held.wait_ready()["HTTPS_PROXY"]
        bundle = fw.home / "run" / "ca-bundle.pem"
        url = f"{upstream.base_url}/v1/models"
        assert through_proxy(proxy_url, bundle, url) == 200  # alice's own credentials, while her run lasts
        assert "407" in str(through_proxy(proxy_url.replace("//alice:", "//bob:"), bundle, url))
        assert "407" in str(through_proxy(proxy_url.replace("//alice:", "//alice:x"), bundle, url))
        released = held.release()
        assert released.returncode == 0, released.stderr


def test_node_agent_through_a_connect_tunnel(shared, tmp_path):
    """Node 20 (installed here): `https.request` over an `http` CONNECT tunnel the script opens with the
    agent's credentials from HTTPS_PROXY works, trusting our CA through NODE_EXTRA_CA_CERTS. Node 20's
    global `fetch` ignores HTTPS_PROXY; the run's Node preload (NODE_OPTIONS, firewall/run/node_preload.js)
    gives it the proxy, so it is answered through the proxy too (tests/clients covers more of Node)."""
    fw, upstream, _ = shared
    out = tmp_path / "node.json"
    before = len(upstream.seen)
    done = fw.run(
        "run",
        "--agent",
        "node",
        "--",
        "node",
        str(SCRIPTS / "node_client.js"),
        f"{upstream.base_url}/v1/models",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["https"]["status"] == 200, report
    assert json.loads(report["https"]["body"])["data"][0]["id"] == "gpt-4o-mini"
    assert upstream.seen[before].headers["authorization"] == f"Bearer {REAL_KEY}"
    assert report["fetch"]["status"] == 200, report["fetch"]
    assert len(upstream.seen) == before + 2
    assert upstream.seen[before + 1].headers["authorization"] == f"Bearer {REAL_KEY}"


def test_run_without_a_proxy_starts_one_for_the_commands_lifetime(
    firewall, module_upstream, upstream_ca_file, tmp_path
):
    """With no shared proxy, `run` starts one of its own, used by this command alone; SIGTERM to `run`
    reaches the command, `run` exits with its code, and the proxy is gone with it."""
    fw, upstream = firewall, module_upstream
    setup_home(fw, upstream)
    out = tmp_path / "out.json"
    client = [sys.executable, str(SCRIPTS / "client.py"), "httpx", upstream.base_url, str(out), "models"]
    with Held(fw, tmp_path, "--upstream-ca", str(upstream_ca_file), before=client) as held:
        proxy_url = held.wait_ready()["HTTPS_PROXY"]
        [state_file] = (fw.home / "run").glob("proxy-run-*[0-9].json")  # not its .budgets.json snapshot
        state = json.loads(state_file.read_text())
        assert proxy_url.endswith(f"@127.0.0.1:{state['port']}")
        assert alive(state["pid"]) and listening(state["port"])
        assert not (fw.home / "run" / "proxy.json").exists()  # not the shared proxy: nobody else finds it
        assert json.loads(out.read_text())["results"][0]["status"] == 200
        assert upstream.seen[-1].headers["authorization"] == f"Bearer {REAL_KEY}"
        held.process.send_signal(signal.SIGTERM)  # `run` passes it on to the command, then cleans up
        assert held.process.wait(timeout=30) == 128 + signal.SIGTERM
    assert not state_file.exists()
    assert not alive(state["pid"])
    assert not listening(state["port"])
    assert json.loads(fw.run("proxy", "status", "--json").stdout) == {"running": False}


def test_run_with_policy_uses_it_for_this_command_only(shared, upstream_ca_file, tmp_path):
    fw, upstream, shared_proxy = shared
    history = fw.run("policy", "history", "--json", check=True).stdout
    pinned_text = PINNED.format(port=upstream.port)
    pinned = fw.write_policy("pinned.policy", pinned_text)
    out = tmp_path / "pinned.json"
    client = [sys.executable, str(SCRIPTS / "client.py"), "httpx", upstream.base_url, str(out), "models", "chat"]
    with Held(
        fw,
        tmp_path,
        "--agent",
        "pinned",
        "--policy",
        str(pinned),
        "--upstream-ca",
        str(upstream_ca_file),
        before=client,
    ) as held:
        assert not held.wait_ready()["HTTPS_PROXY"].endswith(f":{shared_proxy.port}")  # a proxy of its own
        models, chat = json.loads(out.read_text())["results"]
        assert models["status"] == 403
        assert json.loads(models["body"])["error"]["rule"] == f"{pinned.name}:{rule_line(pinned_text, 'block GET')}"
        assert chat["status"] == 200
        assert upstream.seen[-1].headers["authorization"] == f"Bearer {REAL_KEY}"
        # Meanwhile another agent on the shared proxy still gets the applied policy.
        other = run_client(fw, "httpx", upstream.base_url, "models", "chat", agent="other", out=tmp_path / "o.json")
        assert [r["status"] for r in other.results] == [200, 403]
        released = held.release()
        assert released.returncode == 0, released.stderr
    assert fw.run("policy", "history", "--json", check=True).stdout == history
    assert list((fw.home / "run").glob("policy-*.json")) == []  # the compiled copy is gone with the run
