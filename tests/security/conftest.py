"""One proxy per corpus module: the real CLI, a real proxy, an agent's credentials, local upstreams.

`corpus` applies CORPUS_POLICY over two local HTTPS upstreams:
- `hostile` (localhost:H): the credential "openai" is injected; echo endpoints that leak it back;
- `module_upstream` (localhost:U): no credential; an API with a blocked /admin area;
  any other name on port U is allowed GET by a catch-all, which a name resolving to a
  private address must not get through.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.security.support import Agent, HostileUpstream, Reply, hostile_upstream, mint_token, proxy_ca
from tests.support.fixtures import Firewall, RunningProxy
from tests.support.upstream import Upstream

SECRET = "sk-proj-CORPUSKEY0123456789abcdefghijKLMNOP"

CORPUS_POLICY = """
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}

host localhost:{hostile} {{
    inject openai
    block /admin/**
    allow GET /echo, /error, /basic, /gzip, /brotli-lie, /split, /sse, /redirect, /ws, /reason, /trailer, /quoted
    allow POST /echo
    allow TRACE, OPTIONS /echo       # TRACE is still never forwarded
}}

host localhost:{upstream} {{
    block /admin/**
    block POST /v1/** when json.model != "gpt-4o-mini"
    allow POST /v1/chat/completions
    allow GET /v1/**, /public/**, /echo/**, /ws/**
    allow GET /team/** when agent == "alice"
}}

host *:{upstream} {{                 # any other name on the API's port: must still not reach a private address
    allow GET
}}
"""


@dataclass
class Corpus:
    firewall: Firewall
    proxy: RunningProxy
    agent: Agent
    upstream: Upstream
    hostile: HostileUpstream

    @property
    def api(self) -> str:
        """The CONNECT target of the credential-free API."""
        return f"localhost:{self.upstream.port}"

    @property
    def keyed(self) -> str:
        """The CONNECT target of the host that gets the credential."""
        return f"localhost:{self.hostile.port}"

    def row(self, reply: Reply, timeout: float = 5.0) -> dict:
        """The audit row of the request `reply` answers (by its x-firewall-request-id)."""
        request_id = reply.headers.get("x-firewall-request-id")
        assert request_id, f"the answer carries no request id: {reply}"
        return audit_row(self.firewall.home, request_id, timeout)


def audit_row(home: Path, request_id: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(f"file:{home / 'firewall.db'}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM audit WHERE request_id = ?", [request_id]).fetchone()
        if row is not None:
            return dict(row)
        assert time.monotonic() < deadline, f"no audit row for {request_id}"
        time.sleep(0.05)


def all_audit_rows(home: Path) -> list[dict]:
    with sqlite3.connect(f"file:{home / 'firewall.db'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM audit ORDER BY seq")]


@pytest.fixture(scope="module")
def hostile(test_ca, tmp_path_factory) -> HostileUpstream:
    with hostile_upstream(test_ca, tmp_path_factory.mktemp("hostile")) as server:
        yield server


@pytest.fixture(scope="module")
def corpus(
    module_firewall: Firewall, module_upstream: Upstream, hostile: HostileUpstream, module_proxy: RunningProxy
) -> Corpus:
    fw = module_firewall
    fw.add_secret("openai", SECRET, provider="openai")
    fw.apply(CORPUS_POLICY.format(hostile=hostile.port, upstream=module_upstream.port))
    agent = Agent(module_proxy.port, "attacker", mint_token(fw, "attacker"), proxy_ca(fw))
    corpus = Corpus(fw, module_proxy, agent, module_upstream, hostile)
    _wait_until_in_force(corpus)
    return corpus


def _wait_until_in_force(corpus: Corpus) -> None:
    """The proxy picks up the policy and the vault within a poll interval: wait for both."""
    from tests.security.support import request_bytes

    deadline = time.monotonic() + 10
    while True:
        reply = corpus.agent.https(corpus.keyed, request_bytes("GET", "/echo", corpus.keyed))
        if reply.status == 200 and b"Bearer *" in reply.body:
            return
        assert time.monotonic() < deadline, f"the corpus policy never came into force: {reply}"
        time.sleep(0.1)
