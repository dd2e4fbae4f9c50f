"""What Codex gets under `firewall run`: a CODEX_HOME with its settings and a login worth nothing."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

from firewall.oauth import jwt
from firewall.oauth.codex_home import PLACEHOLDER_EXPIRY, REFRESH_OVERRIDE_URL
from firewall.oauth.login import AUTH_CLAIM, parse_login
from tests.oauth.conftest import REPO, codex_policy


def test_the_agent_sees_no_real_token_anywhere(codex, tmp_path: Path):
    real = codex.import_login(expires_in=3600)
    real_tokens = [real["tokens"][key] for key in ("access_token", "refresh_token", "id_token")]
    user_home = tmp_path / "user-codex"
    user_home.mkdir()
    (user_home / "config.toml").write_text('model = "gpt-5-codex"\n')
    (user_home / "AGENTS.md").write_text("Be brief.\n")
    (user_home / "auth.json").write_text(json.dumps(real))  # the user's own login stays where it is
    policy = codex.firewall.write_policy("codex.policy", codex_policy(codex.backend, codex.token_server.url))

    result = codex.firewall.run(
        "run",
        "--agent",
        "codex",
        "--policy",
        str(policy),
        "--",
        sys.executable,
        "-m",
        "tests.oauth.dump_agent",
        env={
            "PYTHONPATH": str(REPO),
            "CODEX_HOME": str(user_home),
            "LEAKED_ACCESS": real_tokens[0],
            "LEAKED_REFRESH": f"x{real_tokens[1]}x",
        },
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    everything = json.dumps(seen["env"]) + json.dumps(seen["files"])
    for token in real_tokens:
        assert token not in everything
    assert "LEAKED_ACCESS" not in seen["env"] and "LEAKED_REFRESH" not in seen["env"]
    assert seen["env"]["CODEX_HOME"] != str(user_home)
    assert seen["env"]["CODEX_REFRESH_TOKEN_URL_OVERRIDE"] == REFRESH_OVERRIDE_URL
    assert (seen["refresh_status"], json.loads(seen["refresh_body"])["error"]["type"]) == (403, "policy_blocked")

    files = seen["files"]
    assert set(files) == {"auth.json", "config.toml", "AGENTS.md"}
    assert files["config.toml"]["text"] == 'model = "gpt-5-codex"\n' and files["AGENTS.md"]["text"] == "Be brief.\n"
    assert files["auth.json"]["mode"] == 0o600

    placeholder = parse_login(files["auth.json"]["text"])  # Codex's shape: it parses as a ChatGPT login
    assert placeholder.account_id == real["tokens"]["account_id"]
    assert placeholder.plan == "plus"
    assert placeholder.expires_at.timestamp() == PLACEHOLDER_EXPIRY  # Codex never finds it due
    assert placeholder.refresh_token.startswith("firewall-placeholder-")
    claims = jwt.claims(placeholder.id_token)
    assert claims[AUTH_CLAIM]["chatgpt_account_id"] == real["tokens"]["account_id"]
    for token in (placeholder.access_token, placeholder.id_token):  # unsigned: no server takes them
        header = token.split(".")[0]
        assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["alg"] == "none"
    assert placeholder.access_token not in codex.tokens.access

    assert not Path(seen["home"]).exists()  # removed once the agent exited
    assert json.loads((user_home / "auth.json").read_text()) == real


def test_a_policy_without_an_oauth_credential_leaves_codex_home_alone(firewall, upstream, tmp_path: Path):
    policy = firewall.write_policy("plain.policy", f"host localhost:{upstream.port} {{\n    allow GET\n}}\n")
    result = firewall.run(
        "run",
        "--policy",
        str(policy),
        "--",
        sys.executable,
        "-c",
        "import os; print(os.environ.get('CODEX_HOME', 'unset'))",
        env={"CODEX_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path)
