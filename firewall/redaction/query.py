"""Masking query parameters (and JSON fields) that look like credentials, vault or not.

A URL an agent sent may carry a key the vault does not know (`?api_key=…`,
`?token=sk-…`). `mask_query` replaces the value of every parameter whose name
or value looks like a credential, and every value holding a vault secret
(`redact` is the vault index's), with MASK. The audit log and approval
previews both use it: one definition of what looks like a credential.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

from firewall.redaction.index import MASK

_CREDENTIAL_NAME = re.compile(r"(key|token|secret|password|passwd|auth|sig|signature|credential|session)", re.I)
_CREDENTIAL_VALUE = re.compile(
    r"^(sk-[A-Za-z0-9_-]{8,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|AIza[\w-]{20,}|eyJ[\w-]+\.[\w-]+\.[\w-]*)$"
)


def keep(text: str) -> str:
    """The `redact` of an empty vault."""
    return text


def looks_secret(name: str, value: str, redact: Callable[[str], str] = keep) -> bool:
    """Whether `name=value` looks like a credential, or `value` holds a vault secret."""
    if not value:
        return False
    return bool(_CREDENTIAL_NAME.search(name) or _CREDENTIAL_VALUE.match(value) or redact(value) != value)


def mask_query(query: str, redact: Callable[[str], str] = keep) -> str:
    """The query with credential-looking values replaced by ****."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    masked = [(name, MASK if looks_secret(name, value, redact) else value) for name, value in pairs]
    return urlencode(masked, safe="*/:")
