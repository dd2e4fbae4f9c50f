"""What a stored compiled policy's JSON says, read without building the policy.

`firewall run` needs only each credential's vault entry and kind: placeholder keys for the
agent's SDKs, and which real values to keep out of its environment. Building the whole
`CompiledPolicy` (conditions, globs, the host index, the JSON again for its sha256) is the
proxy's work; the run read it whole only for this (docs/performance.md, "Start-up").
"""

from __future__ import annotations

import json
from dataclasses import dataclass

FORMAT_VERSION = 1  # of the JSON `CompiledPolicy.to_json` writes (compiled.py)


@dataclass(frozen=True)
class CredentialUse:
    """A credential of a policy: its name, the vault entry it injects, and its kind (header,
    query or oauth)."""

    name: str
    secret: str
    kind: str


def credential_uses(text: str) -> tuple[CredentialUse, ...]:
    """The credentials of the compiled policy `text`, in policy order. ValueError when the text
    is not a compiled policy of this format (the caller then builds it, and says why it fails)."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
        raise ValueError("not a compiled policy of this format")
    policy = data.get("policy")
    if not isinstance(policy, dict) or policy.get("type") != "CompiledPolicy":
        raise ValueError("no policy in it")
    specs = policy.get("credentials")
    if not isinstance(specs, list):
        raise ValueError("no credentials list in it")
    found = []
    for spec in specs:
        if not isinstance(spec, dict) or spec.get("type") != "CredentialSpec":
            raise ValueError("a credential is not a CredentialSpec")
        name, secret, kind = spec.get("name"), spec.get("secret"), spec.get("kind")
        if not (isinstance(name, str) and isinstance(secret, str) and isinstance(kind, str)):
            raise ValueError(f"credential {name!r} lacks its name, secret or kind")
        found.append(CredentialUse(name, secret, kind))
    return tuple(found)


def secret_names(uses: tuple[CredentialUse, ...]) -> tuple[str, ...]:
    """The vault entries `uses` inject, in order of first use (as `CompiledPolicy.secrets`)."""
    return tuple(dict.fromkeys(use.secret for use in uses))
