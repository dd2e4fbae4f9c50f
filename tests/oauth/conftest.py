"""Fixtures for the OAuth tests: the stand-ins, a codex login in the vault, a policy that injects it."""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.oauth.stand_ins import CodexBackend, Tokens, TokenServer
from tests.support.fixtures import Firewall
from tests.support.logins import login_json

CLIENT = [sys.executable, "-m", "tests.oauth.client"]
REPO = Path(__file__).resolve().parents[2]


def codex_binary() -> str | None:
    for candidate in (
        os.environ.get("FIREWALL_TEST_CODEX"),
        str(REPO / ".cache/codex/node_modules/.bin/codex"),
        shutil.which("codex"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


CODEX = codex_binary()  # the real Codex CLI, or None (its tests are skipped)


@pytest.fixture
def stand_in_pem(test_ca, tmp_path: Path) -> str:
    pem = tmp_path / "stand-in.pem"
    test_ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    return str(pem)


@pytest.fixture
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture
def token_server(stand_in_pem: str, tokens: Tokens):
    server = TokenServer(stand_in_pem, tokens)
    yield server
    server.stop()


@pytest.fixture
def backend(stand_in_pem: str, tokens: Tokens):
    server = CodexBackend(stand_in_pem, tokens)
    yield server
    server.stop()


def codex_policy(backend: CodexBackend, token_url: str, name: str = "codex") -> str:
    return f"""
credential {name} {{
    secret "{name}"
    oauth
    token_url "{token_url}"
}}
host localhost:{backend.server.port} {{
    inject {name}
    allow GET /backend-api/codex/models
    allow POST /backend-api/codex/responses
}}
"""


@dataclass
class CodexSetup:
    """A firewall with a running proxy, a codex login in its vault and a policy injecting it."""

    firewall: Firewall
    backend: CodexBackend
    token_server: TokenServer
    tokens: Tokens

    def import_login(self, *, good: bool = True, name: str = "codex", force: bool = False, **kwargs) -> dict:
        """Store a login whose refresh token the token server accepts; `good`: the backend accepts its access token."""
        text = login_json(**kwargs)
        login = json.loads(text)
        with self.tokens.lock:
            self.tokens.refresh = login["tokens"]["refresh_token"]
            if good:
                self.tokens.access.add(login["tokens"]["access_token"])
        path = self.firewall.home.parent / f"auth-{name}.json"
        path.write_text(text)
        args = ["secrets", "add", name, "--provider", "codex", "--file", str(path)] + (["--force"] if force else [])
        self.firewall.run(*args, check=True)
        return login

    def start(self, **kwargs) -> dict:
        """Import a login (see `import_login`) and apply the policy that injects it."""
        login = self.import_login(**kwargs)
        self.firewall.apply(codex_policy(self.backend, self.token_server.url))
        return login

    def agent(
        self,
        path: str = "/backend-api/codex/models",
        *,
        count: int = 1,
        then: int = 0,
        post: str | None = None,
        agent: str = "codex",
        timeout: float = 90,
    ) -> list[dict]:
        args = [
            "run",
            "--agent",
            agent,
            "--",
            *CLIENT,
            f"{self.backend.base_url}{path}",
            "--count",
            str(count),
            "--then",
            str(then),
        ]
        if post is not None:
            args += ["--post", post]
        result = self.firewall.run(*args, timeout=timeout, env={"PYTHONPATH": str(REPO)})
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    def vault_login(self, name: str = "codex") -> dict:
        from firewall.state.home import open_home
        from firewall.vault import Vault

        return json.loads(Vault.open(open_home(self.firewall.home)).get(name))

    def listing(self, name: str = "codex") -> dict:
        entries = json.loads(self.firewall.run("secrets", "list", "--json", check=True).stdout)
        return next(e for e in entries if e["name"] == name)["oauth"]


@pytest.fixture
def codex(firewall, proxy, backend, token_server, tokens) -> CodexSetup:
    return CodexSetup(firewall, backend, token_server, tokens)
