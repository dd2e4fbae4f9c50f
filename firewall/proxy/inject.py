"""Adding the credentials a decision names to the outgoing request.

Runs only after an allow; replaces whatever the agent sent in the same header
or query parameter.
"""

from __future__ import annotations

from collections.abc import Callable

from mitmproxy import http

from firewall.policy import Injection


class CredentialUnavailable(Exception):
    """The vault has no value for a credential the policy injects."""

    def __init__(self, injection: Injection, why: str):
        self.injection = injection
        super().__init__(why)


def apply_injections(
    request: http.Request, injections: tuple[Injection, ...], secret: Callable[[str], str | None]
) -> tuple[str, ...]:
    """Set every injection on `request`; return the credential names used."""
    used = []
    for injection in injections:
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
