"""What the proxy last knew about each OAuth login, for `firewall secrets list`.

    oauth-status.json (0600, in the state folder):
    {"version": 1, "logins": {NAME: {"state": "ok", "fingerprint": "1a2b3c4d",
                                     "detail": null, "updated": ISO}}}

A status is about one value of the vault entry: `fingerprint` names it. Once
the entry holds another value (a person re-imported the login), the old
status no longer applies.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from firewall.state.home import Home, StateError, read_private_json, write_private_file

VERSION = 1


class State(StrEnum):
    OK = "ok"
    REFRESHING = "refreshing"
    RETRYING = "retrying"  # the token endpoint failed for now; the old tokens are kept
    NEEDS_LOGIN = "needs login"  # the refresh token is dead: log in again and re-import


@dataclass(frozen=True)
class LoginStatus:
    state: State
    fingerprint: str
    detail: str | None
    updated: datetime


def status_path(home: Home) -> Path:
    return home.root / "oauth-status.json"


def read_statuses(path: Path) -> dict[str, LoginStatus]:
    try:
        logins = read_private_json(path, VERSION, "logins")
        if logins is None:
            return {}
        return {
            name: LoginStatus(
                state=State(entry["state"]),
                fingerprint=str(entry["fingerprint"]),
                detail=entry.get("detail"),
                updated=datetime.fromisoformat(entry["updated"]),
            )
            for name, entry in logins.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StateError(f"{path} is corrupt ({exc}); delete it, the proxy writes it again") from None


def record_status(home: Home, name: str, status: LoginStatus) -> None:
    """Set `name`'s status, under a lock so two proxies writing at once lose nothing."""
    path = status_path(home)
    fd = os.open(home.root / "oauth-status.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            statuses = read_statuses(path)
        except StateError:
            statuses = {}  # a damaged file is replaced by a good one
        statuses[name] = status
        top = {
            "version": VERSION,
            "logins": {
                key: {
                    "state": str(value.state),
                    "fingerprint": value.fingerprint,
                    "detail": value.detail,
                    "updated": value.updated.astimezone(UTC).isoformat(timespec="seconds"),
                }
                for key, value in sorted(statuses.items())
            },
        }
        write_private_file(path, (json.dumps(top, indent=2) + "\n").encode())
    finally:
        os.close(fd)
