"""Adding the credentials a decision names to the outgoing request.

Runs only after an allow; replaces whatever the agent sent in the same header
or query parameter. An oauth credential's access token comes from the token
keeper (`firewall/proxy/oauth.py`), already refreshed when it was due.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mitmproxy import http

from firewall.policy import Injection
from firewall.proxy.refusals import ProxyReason


class CredentialUnavailable(Exception):
    """The vault has no usable value for a credential the policy injects.

    `code` is the error type the agent sees; `retry_after` (seconds) is set when trying later may work.
    """

    def __init__(
        self,
        injection: Injection,
        why: str,
        *,
        code: ProxyReason = ProxyReason.CREDENTIAL_UNAVAILABLE,
        retry_after: int | None = None,
    ):
        self.injection = injection
        self.code = code
        self.retry_after = retry_after
        super().__init__(why)


@dataclass(frozen=True)
class OAuthAccess:
    """An oauth credential's access token for one request; `generation` tells a refreshed one apart."""

    credential: str
    entry: str
    generation: int
    access_token: str
    account_id: str
    account_header: str  # "" sends none

    def __repr__(self) -> str:  # never print the token
        return f"OAuthAccess(credential={self.credential!r}, entry={self.entry!r}, generation={self.generation})"


def set_oauth_headers(request: http.Request, access: OAuthAccess) -> None:
    request.headers["Authorization"] = f"Bearer {access.access_token}"
    if access.account_header:
        request.headers[access.account_header] = access.account_id


def apply_injections(
    request: http.Request,
    injections: tuple[Injection, ...],
    secret: Callable[[str], str | None],
    oauth: Mapping[str, OAuthAccess] | None = None,
) -> tuple[str, ...]:
    """Set every injection on `request`; return the credential names used."""
    used = []
    for injection in injections:
        if injection.kind == "oauth":
            access = (oauth or {}).get(injection.credential)
            if access is None:
                raise CredentialUnavailable(injection, f'no access token for oauth credential "{injection.credential}"')
            set_oauth_headers(request, access)
            used.append(injection.credential)
            continue
        value = secret(injection.secret)
        if value is None:
            raise CredentialUnavailable(
                injection,
                f'the vault has no entry "{injection.secret}" for credential "{injection.credential}"; '
                f"add it with: firewall secrets add {injection.secret}",
            )
        if injection.kind == "header":
            request.headers[injection.name] = injection.template.replace("{secret}", value)
        elif injection.kind == "query":
            request.query[injection.name] = injection.template.replace("{secret}", value)
        else:
            raise CredentialUnavailable(injection, f'credential "{injection.credential}" is of unknown kind')
        used.append(injection.credential)
    return tuple(used)
