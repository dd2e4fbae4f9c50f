"""Keeping secret values out of everything the firewall writes down.

`mask_query` hides query parameters that look like credentials before a URL
is logged or shown; `Scrubber` replaces known secret values (the vault's)
in any text.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

MASK = "****"
_CREDENTIAL_NAME = re.compile(r"(key|token|secret|password|passwd|auth|sig|signature|credential|session)", re.I)
_CREDENTIAL_VALUE = re.compile(
    r"^(sk-[A-Za-z0-9_-]{8,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|AIza[\w-]{20,}|eyJ[\w-]+\.[\w-]+\.[\w-]*)$"
)


def mask_query(query: str, secrets: tuple[str, ...] = ()) -> str:
    """The query with credential-looking values replaced by ****."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    masked = [
        (name, MASK if _looks_secret(name, value, secrets) else value)
        for name, value in pairs
    ]
    return urlencode(masked, safe="*/:")


def _looks_secret(name: str, value: str, secrets: tuple[str, ...]) -> bool:
    if not value:
        return False
    return bool(_CREDENTIAL_NAME.search(name) or _CREDENTIAL_VALUE.match(value) or any(s and s in value for s in secrets))


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every occurrence of every secret value replaced by ****."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, MASK)
    return text
