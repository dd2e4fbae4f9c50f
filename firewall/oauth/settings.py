"""An oauth credential's settings, from the policy's `token_url`, `client_id` and `account_header`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_TOKEN_URL = "https://auth.openai.com/oauth/token"
DEFAULT_CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"  # Codex's public OAuth client id (not a secret)
DEFAULT_ACCOUNT_HEADER = "ChatGPT-Account-ID"
REFRESH_MARGIN = 300.0  # seconds before expiry at which the proxy refreshes


@dataclass(frozen=True)
class OAuthSettings:
    token_url: str = DEFAULT_TOKEN_URL
    client_id: str = DEFAULT_CLIENT_ID
    account_header: str = DEFAULT_ACCOUNT_HEADER  # "" sends no account header
    margin: float = REFRESH_MARGIN

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> OAuthSettings:
        """From an Injection's `settings`; the compiler has already refused unknown keys."""
        given = dict(pairs)
        return cls(
            token_url=given.get("token_url", DEFAULT_TOKEN_URL),
            client_id=given.get("client_id", DEFAULT_CLIENT_ID),
            account_header=given.get("account_header", DEFAULT_ACCOUNT_HEADER),
        )
