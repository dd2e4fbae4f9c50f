"""Codex logins for tests: auth.json documents with unsigned JWTs of chosen expiry.

The tokens are random but recognisable (`at-…`, `rt-…`), so a test can grep
for them anywhere an agent could see them.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime

from firewall.oauth.jwt import unsigned
from firewall.oauth.login import AUTH_CLAIM

ACCOUNT = "acct-3f9a2c"
PLAN = "plus"
EMAIL = "dev@example.com"


def auth_claims(account: str = ACCOUNT, plan: str = PLAN) -> dict:
    return {AUTH_CLAIM: {"chatgpt_account_id": account, "chatgpt_plan_type": plan, "chatgpt_user_id": "user-7"}}


def access_token(expires_in: float, account: str = ACCOUNT, label: str | None = None) -> str:
    """A JWT access token expiring `expires_in` seconds from now, with a unique `jti`."""
    label = label or "at-" + secrets.token_hex(12)
    return unsigned({"exp": int(time.time() + expires_in), "jti": label, **auth_claims(account)})


def id_token(account: str = ACCOUNT, plan: str = PLAN) -> str:
    return unsigned({"email": EMAIL, "exp": int(time.time() + 3600), **auth_claims(account, plan)})


def refresh_token() -> str:
    return "rt-" + secrets.token_hex(16)


def login_json(
    *,
    expires_in: float = 3600,
    refreshed_ago: float = 0,
    access: str | None = None,
    refresh: str | None = None,
    account: str = ACCOUNT,
) -> str:
    """Codex's auth.json for a ChatGPT login."""
    return json.dumps(
        {
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": None,
            "tokens": {
                "id_token": id_token(account),
                "access_token": access or access_token(expires_in, account),
                "refresh_token": refresh or refresh_token(),
                "account_id": account,
            },
            "last_refresh": datetime.fromtimestamp(time.time() - refreshed_ago, UTC).isoformat().replace("+00:00", "Z"),
        }
    )
