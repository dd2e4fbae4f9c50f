"""One refresh at an OAuth token endpoint, and what its answer means.

    answer = await refresh_tokens(client, settings, refresh_token)

A refresh token that the endpoint says is dead raises `LoginDead` (stop
trying: a person has to log in again); anything that may pass (the network, a
timeout, a 5xx, an answer we cannot read) raises `EndpointUnavailable` after
a few spaced attempts. Messages carry status codes and error codes, never a
token or the answer's body.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from firewall.oauth.settings import OAuthSettings

if TYPE_CHECKING:  # loaded by the first refresh: a proxy that never refreshes never loads httpx
    import httpx

# Codex's permanent refresh failures, and OAuth's generic one (RFC 6749 §5.2).
DEAD_CODES = frozenset({"refresh_token_expired", "refresh_token_reused", "refresh_token_invalidated", "invalid_grant"})
RETRY_DELAYS = (0.5, 1.5)  # seconds between the attempts of one refresh
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class TokenAnswer:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    id_token: str | None = field(repr=False)
    expires_in: float | None


class RefreshFailed(Exception):
    """The refresh did not give new tokens; the message is safe to show."""


class LoginDead(RefreshFailed):
    """The endpoint refused the refresh token for good."""


class EndpointUnavailable(RefreshFailed):
    """The endpoint could not be reached or gave no usable answer; trying later may work."""


def error_code(payload: Any) -> str | None:
    """The error code of an OAuth error answer: `{"error": "x"}`, `{"error": {"code": "x"}}` or `{"code": "x"}`."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    candidates = [error, error.get("code") if isinstance(error, dict) else None, payload.get("code")]
    for candidate in candidates:
        if isinstance(candidate, str) and _CODE.fullmatch(candidate):
            return candidate
    return None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _optional_str(payload: dict, key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


def read_answer(response: httpx.Response) -> TokenAnswer:
    """Classify one token endpoint response (the caller has read its body)."""
    payload = _json(response)
    code = error_code(payload)
    where = f"the token endpoint answered {response.status_code}" + (f" ({code})" if code else "")
    if response.status_code == 401 or code in DEAD_CODES:
        raise LoginDead(where)
    if response.status_code != 200:
        raise EndpointUnavailable(where)
    if not isinstance(payload, dict) or not _optional_str(payload, "access_token"):
        raise EndpointUnavailable("the token endpoint answered 200 without an access_token")
    expires_in = payload.get("expires_in")
    return TokenAnswer(
        access_token=payload["access_token"],
        refresh_token=_optional_str(payload, "refresh_token"),
        id_token=_optional_str(payload, "id_token"),
        expires_in=float(expires_in)
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
        else None,
    )


async def request_tokens(client: httpx.AsyncClient, settings: OAuthSettings, refresh_token: str) -> TokenAnswer:
    """One POST to the token endpoint, as Codex sends it (JSON body)."""
    import httpx

    body = {"client_id": settings.client_id, "grant_type": "refresh_token", "refresh_token": refresh_token}
    try:
        response = await client.post(settings.token_url, json=body, headers={"accept": "application/json"})
    except httpx.TimeoutException:
        raise EndpointUnavailable("the token endpoint did not answer in time") from None
    except (httpx.HTTPError, OSError) as exc:
        raise EndpointUnavailable(f"the token endpoint could not be reached ({type(exc).__name__})") from None
    return read_answer(response)


async def refresh_tokens(
    client: httpx.AsyncClient,
    settings: OAuthSettings,
    refresh_token: str,
    delays: Sequence[float] = RETRY_DELAYS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> TokenAnswer:
    """Refresh, trying again after each delay while the failure may pass; LoginDead at once."""
    for delay in delays:
        try:
            return await request_tokens(client, settings, refresh_token)
        except EndpointUnavailable:
            await sleep(delay)
    return await request_tokens(client, settings, refresh_token)
