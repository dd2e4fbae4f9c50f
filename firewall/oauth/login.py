"""An OAuth login as the vault stores it: the shape of Codex's `auth.json`.

    {"auth_mode": "chatgpt", "OPENAI_API_KEY": null,
     "tokens": {"id_token": JWT, "access_token": JWT, "refresh_token": "…", "account_id": "…"},
     "last_refresh": RFC 3339, "expires_at": RFC 3339}

`expires_at` is the firewall's own field: the access token's expiry, kept
because a token endpoint may answer with `expires_in` and a token that is no
JWT. Without it the access token's `exp` claim is read. Error messages name
fields, never their values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from firewall.oauth import jwt

AUTH_CLAIM = "https://api.openai.com/auth"  # where ChatGPT tokens keep account id and plan
CHATGPT_MODES = ("chatgpt",)
API_KEY_HINT = (
    "is an API-key login (it holds OPENAI_API_KEY), not a ChatGPT login: store the key with "
    "`firewall secrets add openai --provider openai --stdin`, or run `codex login`, choose "
    '"Sign in with ChatGPT", and import ~/.codex/auth.json again'
)


class InvalidLogin(ValueError):
    """Not a usable ChatGPT login; the message completes "the login …" and never quotes a token."""


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _auth_claims(token: str) -> dict[str, Any]:
    try:
        found = jwt.claims(token).get(AUTH_CLAIM)
    except jwt.NotAJwt:
        return {}
    return found if isinstance(found, dict) else {}


@dataclass(frozen=True)
class Login:
    access_token: str = field(repr=False)  # the tokens never show in a repr, a log or a traceback
    refresh_token: str = field(repr=False)
    id_token: str = field(repr=False)
    account_id: str
    last_refresh: datetime | None
    expires_at: datetime | None  # None: unknown, so only an upstream 401 triggers a refresh

    # ---- what may be shown ----

    @property
    def plan(self) -> str | None:
        plan = _auth_claims(self.id_token).get("chatgpt_plan_type")
        return plan if isinstance(plan, str) else None

    @property
    def email(self) -> str | None:
        try:
            email = jwt.claims(self.id_token).get("email")
        except jwt.NotAJwt:
            return None
        return email if isinstance(email, str) else None

    def secrets(self) -> tuple[str, ...]:
        """Every value that must never reach an agent, a log or the screen."""
        return (self.access_token, self.refresh_token, self.id_token)

    # ---- when to refresh ----

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at.timestamp()

    def due(self, now: float, margin: float) -> bool:
        """Time to refresh: within `margin` of expiry, or within half the token's lifetime
        when that is shorter (so a short-lived token is not refreshed on every request)."""
        if self.expires_at is None:
            return False
        expires = self.expires_at.timestamp()
        if self.last_refresh is not None:
            margin = min(margin, max(0.0, (expires - self.last_refresh.timestamp()) / 2))
        return now >= expires - margin

    # ---- changing ----

    def refreshed(
        self,
        *,
        access_token: str,
        refresh_token: str | None,
        id_token: str | None,
        expires_in: float | None,
        now: float,
    ) -> Login:
        """This login after a token endpoint's answer; a field it did not send is kept."""
        new_id = id_token or self.id_token
        account = _auth_claims(new_id).get("chatgpt_account_id")
        return replace(
            self,
            access_token=access_token,
            refresh_token=refresh_token or self.refresh_token,
            id_token=new_id,
            account_id=account if isinstance(account, str) and account else self.account_id,
            last_refresh=datetime.fromtimestamp(int(now), UTC),
            expires_at=_expiry(access_token, expires_in, now),
        )

    def to_json(self) -> str:
        document: dict[str, Any] = {
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": None,
            "tokens": {
                "id_token": self.id_token,
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "account_id": self.account_id,
            },
            "last_refresh": _iso(self.last_refresh) if self.last_refresh else None,
            "expires_at": _iso(self.expires_at) if self.expires_at else None,
        }
        return json.dumps(document, indent=2)


def _expiry(access_token: str, expires_in: float | None, now: float) -> datetime | None:
    exp = jwt.expiry(access_token)
    if exp is None and expires_in is not None:
        exp = now + expires_in
    return datetime.fromtimestamp(exp, UTC) if exp is not None else None


def _token(tokens: dict[str, Any], key: str) -> str:
    value = tokens.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidLogin(f"has no tokens.{key}")
    return value.strip()


def parse_login(text: str) -> Login:
    """Read a login (Codex's auth.json, or what the vault stored); InvalidLogin says what is wrong."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidLogin("is not valid JSON") from None
    if not isinstance(document, dict):
        raise InvalidLogin('has no "tokens" object')
    mode = document.get("auth_mode")
    api_key = document.get("OPENAI_API_KEY")
    if mode == "apikey" or (not isinstance(document.get("tokens"), dict) and isinstance(api_key, str) and api_key):
        raise InvalidLogin(API_KEY_HINT)
    if mode is not None and mode not in CHATGPT_MODES:
        raise InvalidLogin(f'has auth_mode {mode!r}; only a ChatGPT login ("chatgpt") can be imported')
    tokens = document.get("tokens")
    if not isinstance(tokens, dict):
        raise InvalidLogin('has no "tokens" object')
    access, refresh, id_token = (_token(tokens, key) for key in ("access_token", "refresh_token", "id_token"))
    try:
        jwt.claims(id_token)
    except jwt.NotAJwt as exc:
        raise InvalidLogin(f"has a tokens.id_token that is {exc}") from None
    account = tokens.get("account_id") or _auth_claims(id_token).get("chatgpt_account_id")
    if not isinstance(account, str) or not account.strip():
        raise InvalidLogin("has no account id (tokens.account_id)")
    if "expires_at" in document:  # written by the firewall; null when the expiry is unknown
        expires_at = _time(document["expires_at"])
    else:
        exp = jwt.expiry(access)
        if exp is None:
            raise InvalidLogin(
                "has a tokens.access_token without an expiry (it is no JWT with an exp claim); "
                "is it really a ChatGPT login from `codex login`?"
            )
        expires_at = datetime.fromtimestamp(exp, UTC)
    return Login(
        access_token=access,
        refresh_token=refresh,
        id_token=id_token,
        account_id=account.strip(),
        last_refresh=_time(document.get("last_refresh")),
        expires_at=expires_at,
    )


def login_secrets(text: str) -> tuple[str, ...]:
    """The tokens inside a stored login (nothing when it does not parse)."""
    try:
        return parse_login(text).secrets()
    except InvalidLogin:
        return ()
