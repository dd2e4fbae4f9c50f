"""The CODEX_HOME that Codex gets under `firewall run`: its config, and a login that is worth nothing.

Codex reads its login from `$CODEX_HOME/auth.json` and insists on a
well-formed one. The placeholder has the real account id and plan (they are
not secrets: the account id travels in a header) and tokens that are not:
an access token that says it expires in 2100 (so Codex never tries to refresh
it), an id token carrying the claims Codex parses, and a random refresh token.
The proxy replaces the Authorization header with the real access token.

If Codex tries to refresh anyway (after a 401 the proxy could not mend), it
goes to CODEX_REFRESH_TOKEN_URL_OVERRIDE, a URL that no policy names: refused.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from firewall.oauth.jwt import unsigned
from firewall.oauth.login import AUTH_CLAIM, InvalidLogin, Login, parse_login
from firewall.policy import CompiledPolicy, Request, Verdict, decide
from firewall.state.home import write_private_file

REFRESH_OVERRIDE_URL = "https://codex-refresh.agent-firewall.invalid/oauth/token"
PLACEHOLDER_EXPIRY = 4102444800  # 2100-01-01T00:00:00Z
COPIED_FILES = ("config.toml", "AGENTS.md")  # the user's settings and instructions; never auth.json


@dataclass(frozen=True)
class CodexHome:
    path: Path

    @property
    def env(self) -> dict[str, str]:
        return {"CODEX_HOME": str(self.path), "CODEX_REFRESH_TOKEN_URL_OVERRIDE": REFRESH_OVERRIDE_URL}

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def user_codex_home(env: Mapping[str, str]) -> Path:
    """Where the user's own Codex keeps its files: $CODEX_HOME, else ~/.codex."""
    configured = env.get("CODEX_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".codex"


def placeholder_login(login: Login) -> str:
    """auth.json for Codex: the real account id and plan, tokens that work nowhere."""
    auth = {"chatgpt_account_id": login.account_id}
    if login.plan:
        auth["chatgpt_plan_type"] = login.plan
    claims = {"exp": PLACEHOLDER_EXPIRY, "iss": "agent-firewall-placeholder", AUTH_CLAIM: auth}
    return json.dumps(
        {
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": None,
            "tokens": {
                "id_token": unsigned(claims),
                "access_token": unsigned({**claims, "jti": secrets.token_hex(8)}),
                "refresh_token": "firewall-placeholder-" + secrets.token_hex(16),
                "account_id": login.account_id,
            },
            "last_refresh": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        },
        indent=2,
    )


def oauth_login(policy: CompiledPolicy, values: Mapping[str, str]) -> tuple[str, Login] | None:
    """The first oauth credential of `policy` whose vault entry holds a login: (entry, login)."""
    for credential in policy.credentials:
        if credential.kind != "oauth" or credential.secret not in values:
            continue
        try:
            return credential.secret, parse_login(values[credential.secret])
        except InvalidLogin:
            continue
    return None


def create_codex_home(login: Login, user_home: Path, parent: Path) -> CodexHome:
    """A private temporary folder in `parent` with the placeholder login and copies of the user's settings.

    Not under /tmp: Codex refuses to set up its helper commands in a CODEX_HOME there.
    """
    home = CodexHome(Path(tempfile.mkdtemp(prefix="codex-home-", dir=parent)))  # 0700
    try:
        write_private_file(home.path / "auth.json", placeholder_login(login).encode())
        for name in COPIED_FILES:
            source = user_home / name
            if source.is_file():
                shutil.copyfile(source, home.path / name)
    except BaseException:
        home.remove()
        raise
    return home


def refresh_override_refused(policy: CompiledPolicy, agent: str) -> bool:
    """Whether `policy` refuses Codex's own refresh attempts (it should: nothing real is there)."""
    request = Request.from_url("POST", REFRESH_OVERRIDE_URL, agent=agent)
    return decide(policy, request, time.time()).verdict is Verdict.BLOCK
