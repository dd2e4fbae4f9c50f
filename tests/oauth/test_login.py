"""Reading a Codex login, deciding when it is due, and what a token endpoint's answer means."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
import pytest

from firewall.oauth import jwt
from firewall.oauth.codex_home import placeholder_login
from firewall.oauth.endpoint import EndpointUnavailable, LoginDead, error_code, read_answer
from firewall.oauth.login import InvalidLogin, parse_login
from firewall.oauth.report import describe
from firewall.oauth.settings import DEFAULT_ACCOUNT_HEADER, DEFAULT_TOKEN_URL, OAuthSettings
from tests.support.logins import ACCOUNT, EMAIL, access_token, login_json

GOOD = json.loads(login_json())


def with_tokens(**changes) -> str:
    document = json.loads(login_json())
    document["tokens"].update(changes)
    return json.dumps({k: v for k, v in document.items()})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "is not valid JSON"),
        ("[1]", 'has no "tokens" object'),
        (json.dumps({"auth_mode": "apikey", "OPENAI_API_KEY": "sk-abc"}), "is an API-key login"),
        (json.dumps({"OPENAI_API_KEY": "sk-abc", "tokens": None}), "is an API-key login"),
        (json.dumps({**GOOD, "auth_mode": "agentIdentity"}), "only a ChatGPT login"),
        (with_tokens(refresh_token=""), "has no tokens.refresh_token"),
        (with_tokens(access_token=None), "has no tokens.access_token"),
        (with_tokens(id_token="not-a-jwt"), "tokens.id_token that is not a JWT"),
        (with_tokens(access_token="opaque-token"), "without an expiry"),
        (with_tokens(account_id=None, id_token=jwt.unsigned({"email": EMAIL})), "has no account id"),
    ],
)
def test_what_is_not_a_usable_chatgpt_login_is_named_without_its_tokens(text: str, problem: str):
    with pytest.raises(InvalidLogin) as caught:
        parse_login(text)
    assert problem in str(caught.value)
    for token in GOOD["tokens"].values():
        assert token not in str(caught.value)


def test_a_codex_login_is_read_with_its_account_plan_and_expiry():
    login = parse_login(login_json(expires_in=600))
    assert (login.account_id, login.plan, login.email) == (ACCOUNT, "plus", EMAIL)
    assert abs(login.expires_at.timestamp() - (time.time() + 600)) < 5
    assert describe(login).startswith(f"account {ACCOUNT} ({EMAIL}), plan plus, access token expires 20")
    assert not any(token in describe(login) for token in login.secrets())


def test_the_account_id_may_come_from_the_id_token():
    assert parse_login(with_tokens(account_id=None)).account_id == ACCOUNT


@pytest.mark.parametrize(
    ("expires_in", "refreshed_ago", "due", "expired"),
    [
        (3600, 0, False, False),
        (301, 3299, False, False),
        (299, 3301, True, False),  # inside the five-minute margin
        (-1, 3601, True, True),
        (25, 15, False, False),  # a 40-second token is due at half its life, not five minutes early
        (5, 35, True, False),
    ],
)
def test_when_a_token_is_due(expires_in, refreshed_ago, due, expired):
    login = parse_login(login_json(expires_in=expires_in, refreshed_ago=refreshed_ago))
    now = time.time()
    assert login.due(now, OAuthSettings().margin) is due
    assert login.expired(now) is expired


def test_a_refreshed_login_keeps_what_the_answer_left_out_and_reads_back_the_same():
    old = parse_login(login_json())
    new_access = access_token(3600)
    now = time.time()
    new = old.refreshed(access_token=new_access, refresh_token=None, id_token=None, expires_in=None, now=now)
    assert (new.access_token, new.refresh_token, new.id_token) == (new_access, old.refresh_token, old.id_token)
    assert new.last_refresh == datetime.fromtimestamp(int(now), UTC)
    assert parse_login(new.to_json()) == new


def test_an_opaque_access_token_expires_after_expires_in_and_unknown_is_kept_as_unknown():
    old = parse_login(login_json())
    now = time.time()
    timed = old.refreshed(access_token="opaque", refresh_token="r2", id_token=None, expires_in=60, now=now)
    assert timed.expires_at == datetime.fromtimestamp(now + 60, UTC)
    unknown = old.refreshed(access_token="opaque", refresh_token="r2", id_token=None, expires_in=None, now=now)
    assert parse_login(unknown.to_json()).expires_at is None
    assert not unknown.due(now + 10**6, 300)  # only a 401 refreshes it


def answer(status: int, payload) -> httpx.Response:
    return httpx.Response(status, json=payload)


@pytest.mark.parametrize(
    ("status", "payload", "outcome"),
    [
        (400, {"error": {"code": "refresh_token_expired"}}, LoginDead),
        (400, {"error": {"code": "refresh_token_reused"}}, LoginDead),
        (400, {"error": "refresh_token_invalidated"}, LoginDead),
        (400, {"error": "invalid_grant", "error_description": "bad"}, LoginDead),
        (401, {"error": {"message": "nope"}}, LoginDead),
        (500, {"error": "server_error"}, EndpointUnavailable),
        (503, None, EndpointUnavailable),
        (429, {"code": "rate_limited"}, EndpointUnavailable),
        (400, {"error": "invalid_request"}, EndpointUnavailable),
        (200, {"token_type": "Bearer"}, EndpointUnavailable),
    ],
)
def test_token_endpoint_answers_are_dead_or_passing(status, payload, outcome):
    with pytest.raises(outcome) as caught:
        read_answer(answer(status, payload))
    assert str(status) in str(caught.value)


def test_a_good_answer_gives_the_new_tokens():
    got = read_answer(answer(200, {"access_token": "a", "refresh_token": "r", "id_token": "i", "expires_in": 3600}))
    assert (got.access_token, got.refresh_token, got.id_token, got.expires_in) == ("a", "r", "i", 3600.0)


def test_an_error_code_is_only_shown_when_it_looks_like_one():
    assert error_code({"error": {"code": "refresh_token_reused"}}) == "refresh_token_reused"
    assert error_code({"error": "eyJhbGciOi.leaked.token with spaces"}) is None


def test_settings_default_to_openai_and_codex():
    settings = OAuthSettings.from_pairs([("token_url", "https://login.example/token")])
    assert (settings.token_url, settings.client_id, settings.account_header) == (
        "https://login.example/token",
        "app_EMoamEEZ73f0CkXaXp7hrann",
        DEFAULT_ACCOUNT_HEADER,
    )
    assert OAuthSettings.from_pairs([]).token_url == DEFAULT_TOKEN_URL


def test_the_placeholder_login_has_the_account_and_no_real_token():
    real = parse_login(login_json())
    placeholder = parse_login(placeholder_login(real))
    assert placeholder.account_id == real.account_id and placeholder.plan == real.plan
    assert not set(placeholder.secrets()) & set(real.secrets())
    assert placeholder_login(real) != placeholder_login(real)  # a fresh random refresh token each time
