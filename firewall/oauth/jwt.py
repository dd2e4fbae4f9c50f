"""Reading a JWT's claims (never verifying them) and writing unsigned ones for placeholders.

The firewall does not trust what a token says about itself for any security
decision: the claims only tell it when to refresh, and what to show a person.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


class NotAJwt(ValueError):
    """The text is not three base64url parts with a JSON object in the middle."""


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims(token: str) -> dict[str, Any]:
    """The payload of `token`, unverified. Raises NotAJwt (without quoting the token)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise NotAJwt("not a JWT (expected three dot-separated parts)")
    try:
        payload = json.loads(_b64decode(parts[1]))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise NotAJwt("the JWT's payload is not base64url-encoded JSON") from None
    if not isinstance(payload, dict):
        raise NotAJwt("the JWT's payload is not a JSON object")
    return payload


def expiry(token: str) -> float | None:
    """The `exp` claim (seconds since the epoch), or None when the token has none or is no JWT."""
    try:
        exp = claims(token).get("exp")
    except NotAJwt:
        return None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


def unsigned(payload: dict[str, Any]) -> str:
    """A well-formed JWT with `alg: none` and a fixed signature part: parseable, never valid."""
    header = _b64encode(json.dumps({"alg": "none", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64encode(json.dumps(payload, separators=(",", ":")).encode())
    return f"{header}.{body}.{_b64encode(b'agent-firewall-placeholder')}"
