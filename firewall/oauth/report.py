"""What `firewall secrets` shows about an OAuth login: who, until when, and how it is doing. Never a token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from firewall.oauth.login import InvalidLogin, Login, parse_login
from firewall.oauth.status import LoginStatus, State


@dataclass(frozen=True)
class LoginReport:
    account: str | None
    email: str | None
    plan: str | None
    expires: datetime | None
    last_refresh: datetime | None
    state: str  # ok, refreshing, retrying, needs login, expired, unreadable
    detail: str | None


def describe(login: Login) -> str:
    """One line for `secrets add`: "account acct-… (a@b.c), plan plus, access token expires …"."""
    who = f"account {login.account_id}" + (f" ({login.email})" if login.email else "")
    plan = f", plan {login.plan}" if login.plan else ""
    expires = login.expires_at.isoformat().replace("+00:00", "Z") if login.expires_at else "at an unknown time"
    return f"{who}{plan}, access token expires {expires}"


def report(text: str, fingerprint: str, status: LoginStatus | None, now: float) -> LoginReport:
    """`status` applies only while the entry still holds the value it was recorded for."""
    try:
        login = parse_login(text)
    except InvalidLogin as exc:
        return LoginReport(None, None, None, None, None, "unreadable", f"the login {exc}")
    if status is not None and status.fingerprint == fingerprint:
        state, detail = str(status.state), status.detail
    else:
        state, detail = str(State.OK), None
    if state == State.OK and login.expired(now):
        state, detail = "expired", "the proxy refreshes it on the next request that uses it"
    return LoginReport(login.account_id, login.email, login.plan, login.expires_at, login.last_refresh, state, detail)
