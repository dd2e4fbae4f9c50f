"""The real Codex CLI under `firewall run`, with a ChatGPT login, against local stand-ins.

Codex gets a placeholder login; the proxy refreshes the real one (it starts
expired) and injects it. The stand-in backend takes only real access tokens,
so a turn that completes proves the swap. scripts/test.sh installs the CLI
from the npm registry into .cache/codex; without it this test is skipped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.oauth.conftest import CODEX, codex_policy

PROMPT = "say hi"


pytestmark = pytest.mark.skipif(
    CODEX is None, reason="the codex CLI is not installed (scripts/test.sh installs it from the npm registry)"
)


def run_stopping_everything(command: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Run `command` in its own process group, with standard input at EOF (`codex exec` reads more of
    the prompt from a non-terminal stdin); on timeout stop the whole group: firewall run, then Codex."""
    child = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGTERM)  # firewall run passes it on to Codex
        try:
            child.communicate(timeout=15)
        finally:
            os.killpg(child.pid, signal.SIGKILL) if child.poll() is None else None
        raise
    return subprocess.CompletedProcess(command, child.returncode, stdout, stderr)


def test_codex_runs_a_turn_with_the_login_it_never_sees(codex, tmp_path: Path):
    real = codex.import_login(expires_in=-30)  # expired: the proxy refreshes it before the first request
    user_home = tmp_path / "user-codex"
    user_home.mkdir()
    (user_home / "config.toml").write_text(f"""
model = "gpt-5-codex"
model_provider = "chatgpt-stand-in"

[model_providers.chatgpt-stand-in]
name = "ChatGPT stand-in"
base_url = "{codex.backend.base_url}/backend-api/codex"
wire_api = "responses"
requires_openai_auth = true
""")
    codex.firewall.apply(codex_policy(codex.backend, codex.token_server.url))  # through the shared proxy
    result = run_stopping_everything(
        [
            sys.executable,
            "-m",
            "firewall",
            "run",
            "--agent",
            "codex",
            "--",
            CODEX,
            "exec",
            "--skip-git-repo-check",
            "--color",
            "never",
            PROMPT,
        ],
        env={**codex.firewall.env, "CODEX_HOME": str(user_home), "HOME": str(tmp_path)},
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "hello from the stand-in" in result.stdout

    turns = [s for s in codex.backend.seen if s.method == "POST" and s.path == "/backend-api/codex/responses"]
    assert turns, [(s.method, s.path) for s in codex.backend.seen]
    turn = turns[0]
    bearer = turn.headers["authorization"].removeprefix("Bearer ")
    assert bearer in codex.tokens.access and bearer != real["tokens"]["access_token"]  # the refreshed real one
    assert turn.headers["chatgpt-account-id"] == real["tokens"]["account_id"]
    assert turn.headers["originator"].startswith("codex_")
    assert any(name.startswith("x-codex-") for name in turn.headers)
    assert PROMPT in turn.body.decode()

    # One refresh, by the proxy, with the real refresh token; Codex never tried its own.
    assert [c.body["refresh_token"] for c in codex.token_server.calls] == [real["tokens"]["refresh_token"]]
    assert real["tokens"]["refresh_token"] not in result.stdout + result.stderr
