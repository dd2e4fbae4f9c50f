"""When each vault entry was last used, kept apart from the vault.

The proxy records use often; keeping it in `vault-usage.json` means it never
rewrites the vault's ciphertexts to do so.

    {"version": 1, "last_used": {NAME: ISO time}}
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from firewall.state.home import read_private_json, write_private_file
from firewall.vault.errors import VaultError
from firewall.vault.format import format_time

VERSION = 1


def read_usage(path: Path) -> dict[str, datetime]:
    """Last-used times by entry name; an absent file means nothing was used yet."""
    try:
        last_used = read_private_json(path, VERSION, "last_used")
        if last_used is None:
            return {}
        if not isinstance(last_used, dict):
            raise ValueError("last_used should be an object")
        parsed = {name: datetime.fromisoformat(when) for name, when in last_used.items()}
        if any(when.tzinfo is None for when in parsed.values()):
            raise ValueError("a time has no time zone")
        return parsed
    except (ValueError, KeyError, TypeError) as exc:
        raise VaultError(f"usage file {path} is corrupt: {exc}") from None


def write_usage(path: Path, last_used: dict[str, datetime]) -> None:
    top = {
        "version": VERSION,
        "last_used": {name: format_time(when) for name, when in sorted(last_used.items())},
    }
    write_private_file(path, (json.dumps(top, indent=2) + "\n").encode())
