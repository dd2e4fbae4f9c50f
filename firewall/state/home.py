"""The state folder: where every file the firewall keeps lives.

`$FIREWALL_HOME` if set, else the platform's user data folder. The folder is
owner-only (0700) and every file in it that holds a secret or a key is 0600.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "FIREWALL_HOME"
DIR_MODE = 0o700
SECRET_FILE_MODE = 0o600


class StateError(Exception):
    """A problem with the state folder, worded so the user can fix it."""


class _InRoot:
    """A path inside the state folder, named once: `home.database` is `home.root / "firewall.db"`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, home: Home, owner: type | None = None) -> Path:
        return home.root / self.name


@dataclass(frozen=True)
class Home:
    """Paths of everything inside one state folder."""

    root: Path

    database = _InRoot("firewall.db")
    vault = _InRoot("vault.json")
    master_key = _InRoot("master.key")
    ca_dir = _InRoot("ca")  # mitmproxy's confdir: its CA private key lives here and never leaves
    audit_key = _InRoot("audit-signing.key")  # signs audit checkpoints (firewall/audit/checkpoints.py)
    checkpoints = _InRoot("audit-checkpoints.jsonl")  # signed checkpoints of the audit chain, one JSON line each
    run_dir = _InRoot("run")  # runtime files of a running proxy (pid, port, bundles for agents)


def default_root() -> Path:
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser().absolute()
    return platform_root()


def platform_root() -> Path:
    """The state folder when $FIREWALL_HOME is not set: the platform's user data folder."""
    import platformdirs  # not at the top: with tempfile, shutil and random, ~1.5 MiB in every process

    return Path(platformdirs.user_data_dir("agent-firewall", appauthor=False))


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and parents) owner-only; tighten it if it already exists."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)


def open_home(root: Path | None = None) -> Home:
    """The state folder, created owner-only if it does not exist yet."""
    home = Home(root if root is not None else default_root())
    try:
        ensure_private_dir(home.root)
        ensure_private_dir(home.run_dir)
    except OSError as exc:
        raise StateError(f"{home.root}: cannot create the state folder: {exc.strerror}") from exc
    return home


def write_private_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, 0600 from the first byte."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_private_file(path: Path) -> None:
    """Refuse a secret file that group or others can read or write."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise StateError(f"{path}: permissions {mode:04o} let other users read it; fix with: chmod 600 {path}")


def read_private_json(path: Path, version: int, section: str) -> object | None:
    """`section` of the private JSON file `path` written as {"version": version, section: ...},
    or None when the file does not exist. Raises StateError for loose permissions, and
    ValueError, KeyError or TypeError for a file of another shape (each caller says how to fix it)."""
    if not path.exists():
        return None
    check_private_file(path)
    top = json.loads(path.read_bytes())
    if not isinstance(top, dict) or top.get("version") != version:
        raise ValueError(f"expected version {version}")
    return top[section]
