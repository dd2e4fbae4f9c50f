"""The client matrix: every client installable here, unchanged, as an agent under `firewall run`.

Isolated (the default) and, where it differs, `--no-isolate`. For each client that can use a proxy:
it is answered, the real key reached the upstream (injected by the proxy), the key is nowhere in
the agent's environment or output, and each request the upstream saw has exactly one audit row.
For a client that cannot use a proxy (aiohttp's default session, Go to a loopback address): refused
at once inside the sandbox, nothing reached the upstream; its control, the same client under
--no-isolate, goes straight to the upstream (no decision, no audit row), which is what isolation is for.

Go (Debian's golang-go) and openai-node (npm, into .cache/openai-node) are installed by scripts/test.sh;
without them their cases are skipped. uv (PyPI, the test extras) installs a wheel from the package
index stand-in; it sends HEAD for the wheel before its GETs, each with its own audit row.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients.toolchains import axios, go_client, node_runtimes, openai_node, uv_client
from tests.support.fixtures import REAL_KEY
from tests.support.stand_ins import WHEEL

pytestmark = pytest.mark.clients

SCRIPTS = Path(__file__).parent / "scripts"
PY = [sys.executable, str(SCRIPTS / "py_clients.py")]
# uv reads no config file and no UV_* index setting of the machine: only the stand-in's index;
# it reports on stderr: the wrapper puts it on stdout, where the answer is looked for.
UV_CLEAN = [
    "sh",
    "-c",
    '"$@" 2>&1',
    "sh",
    "env",
    "-u",
    "UV_INDEX_URL",
    "-u",
    "UV_EXTRA_INDEX_URL",
    "-u",
    "UV_INDEX",
    "UV_NO_CONFIG=1",
]
PIP_CLEAN = ["env", "-u", "PIP_FIND_LINKS", "-u", "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE=/dev/null"]
REFUSED_WITHIN = 2.0  # seconds: a refused connection fails at once, a timeout would not


@dataclass(frozen=True)
class Client:
    command: Callable  # (api base URL, stand-in) -> argv
    answer: str  # in its output when it was answered
    needs: str = ""  # the program it needs, skipped without it
    on_stand_in: bool = False  # git and pip talk to the git host / package index stand-in
    on_llm: bool = False  # the Responses API: the stand-in that answers in each API's format
    missing: Callable[[], str | None] = lambda: None  # why it cannot run here, or None


MODELS = "gpt-4o-mini"
CLIENTS = {
    "openai-sync": Client(lambda base, si: [*PY, "openai-sync", base], MODELS),
    "openai-async": Client(lambda base, si: [*PY, "openai-async", base], MODELS),
    "openai-stream": Client(lambda base, si: [*PY, "openai-stream", base], "hello from upstream"),
    # client.responses.create, whole and streamed, against the stand-in that answers the Responses format
    "openai-responses": Client(lambda base, si: [*PY, "openai-responses", base], "hi", on_llm=True),
    "openai-responses-stream": Client(
        lambda base, si: [*PY, "openai-responses-stream", base], "word0 word1 word2", on_llm=True
    ),
    "httpx": Client(lambda base, si: [*PY, "httpx", base], MODELS),
    "requests": Client(lambda base, si: [*PY, "requests", base], MODELS),
    "urllib": Client(lambda base, si: [*PY, "urllib", base], MODELS),
    "aiohttp-trust-env": Client(lambda base, si: [*PY, "aiohttp-trust-env", base], MODELS),
    "websockets": Client(lambda base, si: [*PY, "websockets", base], "echo: hi"),
    "curl-h1": Client(lambda base, si: ["curl", "-sS", "--http1.1", f"{base}/v1/models"], MODELS, "curl"),
    "curl-h2": Client(lambda base, si: ["curl", "-sS", "--http2", f"{base}/v1/models"], MODELS, "curl"),
    "wget": Client(lambda base, si: ["wget", "-nv", "-O", "-", "--tries=1", f"{base}/v1/models"], MODELS, "wget"),
    "git": Client(lambda base, si: ["git", "ls-remote", si.repo_url], "refs/heads/main", "git", True),
    "pip": Client(
        lambda base, si: [
            *PIP_CLEAN,
            *(sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--retries", "0"),
            *("--index-url", si.index_url, "-d", str(si.root / f"dl-{id(si)}"), "fwprobe"),
        ],
        "Successfully downloaded fwprobe",
        on_stand_in=True,
    ),
    # uv asks for the wheel's headers (HEAD) before it reads it: the policy allows HEAD /packages/**.
    "uv": Client(
        lambda base, si: [
            *UV_CLEAN,
            *(uv_client.binary(), "pip", "install", "--no-cache", "--python", sys.executable),
            *("--target", str(si.root / f"uv-{id(si)}"), "--index-url", si.index_url, "fwprobe"),
        ],
        "+ fwprobe==1.0",
        on_stand_in=True,
        missing=uv_client.missing,
    ),
    # Go never proxies a loopback name or address; `localhost.` (the name written in full) is not
    # one to Go, as api.openai.com is not: Go asks the proxy, which resolves it.
    "go": Client(
        lambda base, si: [go_client.binary(), base.replace("//localhost:", "//localhost.:") + "/v1/models"],
        "200 {",
        missing=go_client.missing,
    ),
}


def _either(*checks: Callable[[], str | None]) -> Callable[[], str | None]:
    return lambda: next((why for check in checks if (why := check()) is not None), None)


def node_clients(major: int) -> dict[str, Client]:
    """Node's built-in clients, openai-node and axios, under one Node release."""
    runtime = node_runtimes[major]

    def node(*args: str) -> list[str]:
        return [runtime.binary() or "node", *args]

    return {
        f"node{major}-fetch": Client(
            lambda base, si: node(str(SCRIPTS / "node_clients.js"), "fetch", f"{base}/v1/models"),
            "200 {",
            missing=runtime.missing,
        ),
        f"node{major}-https": Client(
            lambda base, si: node(str(SCRIPTS / "node_clients.js"), "https", f"{base}/v1/models"),
            "200 {",
            missing=runtime.missing,
        ),
        f"node{major}-openai-node": Client(
            lambda base, si: node(str(SCRIPTS / "openai_node.js"), str(openai_node.package()), base),
            MODELS,
            missing=_either(runtime.missing, openai_node.missing),
        ),
        f"node{major}-axios": Client(
            lambda base, si: node(str(SCRIPTS / "axios_client.js"), str(axios.package()), f"{base}/v1/models"),
            "200 {",
            missing=_either(runtime.missing, axios.missing),
        ),
    }


for _major in node_runtimes:
    CLIENTS |= node_clients(_major)
# Node's own clients use the proxy only through the run's preload (Node 22 and 24 also by
# NODE_USE_ENV_PROXY): shown in both modes.
BOTH_MODES = tuple(name for name in CLIENTS if name.startswith("node") and not name.endswith("-axios"))
CASES = [(name, ()) for name in CLIENTS] + [(name, ("--no-isolate",)) for name in BOTH_MODES]


def run_agent(fw, agent: str, command: list[str], out: Path, *run_args: str) -> dict:
    done = fw.run(
        "run", "--agent", agent, *run_args, "--", sys.executable, str(SCRIPTS / "agent.py"), str(out), "--", *command
    )
    assert out.exists(), f"the agent wrote nothing (exit {done.returncode}):\n{done.stderr}"
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize(("name", "run_args"), CASES, ids=[f"{n}{'-no-isolate' if a else ''}" for n, a in CASES])
def test_client_is_answered_through_the_proxy(matrix, module_upstream, stand_in, llm, name, run_args, tmp_path):
    client = CLIENTS[name]
    if client.needs and shutil.which(client.needs) is None:
        pytest.skip(f"{client.needs} is not installed")
    if (why := client.missing()) is not None:
        pytest.skip(why)
    upstream = stand_in if client.on_stand_in else llm if client.on_llm else module_upstream
    agent = f"m-{name}{'-ni' if run_args else ''}"
    before = len(upstream.seen)
    result = run_agent(matrix, agent, client.command(upstream.base_url, stand_in), tmp_path / "out.json", *run_args)
    assert result["code"] == 0, result
    assert client.answer in result["stdout"], result
    seen = upstream.seen[before:]
    assert seen, "nothing reached the upstream"
    assert all(request.headers.get("authorization") == f"Bearer {REAL_KEY}" for request in seen)
    assert all("proxy-authorization" not in request.headers for request in seen)
    assert REAL_KEY not in (tmp_path / "out.json").read_text()
    assert REAL_KEY[8:24] not in (tmp_path / "out.json").read_text()
    rows = matrix.audit_rows_once(lambda rows: len([r for r in rows if r["agent"] == agent]) >= len(seen))
    mine = [r for r in rows if r["agent"] == agent]
    assert len(mine) == len(seen), mine  # one row per request, no more
    assert all(r["decision"] == "allow" for r in mine)
    assert sorted((r["method"], r["path"]) for r in mine) == sorted(
        (request.method, request.path.split("?")[0]) for request in seen
    )
    if name.startswith("node"):  # Node 22's "EnvHttpProxyAgent is experimental" is the run's doing: not shown
        assert "Warning" not in result["stderr"], result["stderr"]
    if name == "uv":  # its HEAD for the wheel, answered and audited like the GETs
        assert ("HEAD", f"/packages/{WHEEL}") in [(r["method"], r["path"]) for r in mine], mine


def test_aiohttp_default_session_is_refused_at_once_inside_the_sandbox(matrix, module_upstream, tmp_path):
    """aiohttp's ClientSession() reads no proxy variable: inside the sandbox its direct connection is
    refused at once and nothing reaches the upstream; no audit row, since no request was made."""
    agent = "m-aiohttp-default"
    before = len(module_upstream.seen)
    result = run_agent(matrix, agent, [*PY, "aiohttp-default", module_upstream.base_url], tmp_path / "out.json")
    assert result["code"] != 0
    assert "Cannot connect" in result["stderr"] or "Connect call failed" in result["stderr"], result["stderr"]
    seconds = float(re.search(r"failed after ([0-9.]+) s", result["stderr"])[1])
    assert seconds < REFUSED_WITHIN, result["stderr"]
    assert len(module_upstream.seen) == before
    assert [r for r in matrix.audit_rows() if r["agent"] == agent] == []


def test_aiohttp_default_session_goes_direct_without_isolation(matrix, module_upstream, tmp_path):
    """The control: under --no-isolate the same client reaches the upstream itself (its TLS handshake
    fails only because the upstream's test CA is not in the agent's bundle): no decision, no row."""
    agent = "m-aiohttp-default-ni"
    result = run_agent(
        matrix, agent, [*PY, "aiohttp-default", module_upstream.base_url], tmp_path / "out.json", "--no-isolate"
    )
    assert result["code"] != 0
    assert "certificate verify failed" in result["stderr"].lower(), result["stderr"]
    assert [r for r in matrix.audit_rows() if r["agent"] == agent] == []


def _go_direct(matrix, upstream, agent: str, url: str, out: Path, *run_args: str, env_prefix=()) -> dict:
    if (why := go_client.missing()) is not None:
        pytest.skip(why)
    return run_agent(matrix, agent, [*env_prefix, go_client.binary(), url], out, *run_args)


# Go going direct: to `localhost` with the proxy variables set (Go never proxies a loopback name or
# address), and to 127.0.0.1 with no proxy variable at all.
GO_DIRECT = {
    "localhost-past-the-proxy": ((), "//localhost:"),
    "no-proxy-settings": (
        ("env", "-u", "HTTPS_PROXY", "-u", "https_proxy", "-u", "ALL_PROXY", "-u", "all_proxy"),
        "//127.0.0.1:",
    ),
}


@pytest.mark.parametrize("case", GO_DIRECT)
def test_go_going_direct_is_refused_at_once_inside_the_sandbox(matrix, module_upstream, tmp_path, case):
    env_prefix, host = GO_DIRECT[case]
    agent = f"m-go-{case}"
    url = module_upstream.base_url.replace("//localhost:", host) + "/v1/models"
    before = len(module_upstream.seen)
    result = _go_direct(matrix, module_upstream, agent, url, tmp_path / "out.json", env_prefix=env_prefix)
    assert result["code"] == 1, result
    assert "connection refused" in result["stderr"], result["stderr"]
    seconds = float(re.search(r"failed after ([0-9.]+) s", result["stderr"])[1])
    assert seconds < REFUSED_WITHIN, result["stderr"]
    assert len(module_upstream.seen) == before
    assert [r for r in matrix.audit_rows() if r["agent"] == agent] == []


def test_go_to_loopback_goes_direct_without_isolation(matrix, module_upstream, tmp_path):
    """The control: under --no-isolate Go reaches the upstream itself (only its test CA is not trusted)."""
    agent = "m-go-direct-ni"
    url = module_upstream.base_url.replace("//localhost:", "//127.0.0.1:") + "/v1/models"
    result = _go_direct(matrix, module_upstream, agent, url, tmp_path / "out.json", "--no-isolate")
    assert result["code"] == 1, result
    assert "x509" in result["stderr"] and "unknown authority" in result["stderr"], result["stderr"]
    assert [r for r in matrix.audit_rows() if r["agent"] == agent] == []


# Node 22 and 24 honour the proxy variables themselves under NODE_USE_ENV_PROXY (and the preload then
# leaves fetch and https as Node made them); without it, the preload does it. Each way alone suffices.
ONE_WAY = {
    "node-alone": ("env", "-u", "NODE_OPTIONS"),
    "preload-alone": ("env", "-u", "NODE_USE_ENV_PROXY"),
}


@pytest.mark.parametrize("way", ONE_WAY)
@pytest.mark.parametrize("client", ["fetch", "https"])
@pytest.mark.parametrize("major", [22, 24])
def test_newer_node_uses_the_proxy_either_way(matrix, module_upstream, major, client, way, tmp_path):
    runtime = node_runtimes[major]
    if (why := runtime.missing()) is not None:
        pytest.skip(why)
    agent = f"m-node{major}-{client}-{way}"
    before = len(module_upstream.seen)
    command = [*ONE_WAY[way], runtime.binary(), str(SCRIPTS / "node_clients.js"), client]
    result = run_agent(matrix, agent, [*command, f"{module_upstream.base_url}/v1/models"], tmp_path / "out.json")
    assert result["code"] == 0 and "200 {" in result["stdout"], result
    seen = module_upstream.seen[before:]
    assert len(seen) == 1 and seen[0].headers.get("authorization") == f"Bearer {REAL_KEY}"
    rows = matrix.audit_rows_once(lambda rows: any(r["agent"] == agent for r in rows))
    assert [(r["method"], r["path"]) for r in rows if r["agent"] == agent] == [("GET", "/v1/models")]
