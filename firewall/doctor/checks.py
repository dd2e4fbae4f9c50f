"""The setup checks: state folder, vault, policy in force, proxy, isolation, limits store.

Each returns one Line, says what it found, and for a failure, the command that fixes it. None
creates or changes anything (the CLI's open_home would tighten permissions: not used here).
"""

from __future__ import annotations

import os
import socket
import stat
from urllib.parse import urlsplit

from firewall.doctor.line import Line, Status
from firewall.state.home import Home

SETUP = "setup"
NO_POLICY_FIX = "firewall policy apply PATH"


def state_folder(home: Home) -> Line:
    name = "state folder"
    if not home.root.is_dir():
        return Line(SETUP, name, Status.FAIL, f"{home.root} does not exist", "firewall init")
    info = home.root.stat()
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.getuid():
        return Line(
            SETUP, name, Status.FAIL, f"{home.root} belongs to uid {info.st_uid}", f"chown -R $USER {home.root}"
        )
    loose = [path for path in (home.root, home.run_dir, home.ca_dir) if path.exists() and _mode(path) & 0o077]
    if loose:
        where = ", ".join(f"{path} ({_mode(path):04o})" for path in loose)
        return Line(
            SETUP, name, Status.FAIL, f"other users can reach {where}", "chmod 700 " + " ".join(map(str, loose))
        )
    return Line(SETUP, name, Status.OK, f"{home.root} ({mode:04o}, yours)")


def vault(home: Home) -> Line:
    from firewall.vault import Vault, VaultError

    name = "vault"
    if not home.vault.exists():
        return Line(SETUP, name, Status.WARN, "no vault yet: no credentials to inject", "firewall secrets add NAME")
    try:
        opened = Vault.open(home)
    except VaultError as exc:
        return Line(SETUP, name, Status.FAIL, str(exc), "firewall secrets restore-backup (see docs/vault.md)")
    except OSError as exc:
        return Line(SETUP, name, Status.FAIL, f"{home.vault}: {exc.strerror}", f"chmod 600 {home.vault}")
    detail = f"{len(opened.names())} secret(s), key mode {opened.mode.value}"
    if home.master_key.exists() and _mode(home.master_key) & 0o077:
        return Line(
            SETUP,
            name,
            Status.FAIL,
            f"{detail}; key file {home.master_key} is readable by others",
            f"chmod 600 {home.master_key}",
        )
    return Line(SETUP, name, Status.OK, detail)


def policy(home: Home) -> Line:
    from firewall.state import policy_store
    from firewall.state.db import open_database

    name = "policy"
    if not home.database.exists():  # made by the first `policy apply`
        return Line(SETUP, name, Status.FAIL, "no policy applied: every request is refused", NO_POLICY_FIX)
    try:
        db = open_database(home.database)
    except Exception as exc:  # a damaged or locked file
        return Line(SETUP, name, Status.FAIL, f"{home.database}: {exc}", "see docs/audit.md")
    try:
        version = policy_store.active_version(db)
        if version is None:
            return Line(SETUP, name, Status.FAIL, "no policy applied: every request is refused", NO_POLICY_FIX)
        version.load()
    except policy_store.PolicyStoreError as exc:
        return Line(SETUP, name, Status.FAIL, str(exc), "firewall policy rollback VERSION")
    finally:
        db.close()
    return Line(SETUP, name, Status.OK, f"version {version.version} ({version.sha256[:12]}) in force")


def proxy(home: Home):
    """(the line, the running proxy's info or None)."""
    from firewall import __version__
    from firewall.run.proxy_process import running_proxy

    name = "proxy"
    info = running_proxy(home)
    if info is None:
        return Line(
            SETUP, name, Status.FAIL, "not running (each `firewall run` starts its own)", "firewall proxy start"
        ), None
    detail = f"pid {info.pid}, 127.0.0.1:{info.port}, firewall {__version__}"
    if info.problems:
        what = "; ".join(f"{w}: {m}" for w, m in info.problems)
        return Line(SETUP, name, Status.FAIL, f"{detail}; {what}", "firewall proxy status (docs/proxy.md)"), info
    return Line(SETUP, name, Status.OK, detail), info


def isolation() -> Line:
    from firewall.run import sandbox

    name = "isolation"
    try:
        bwrap = sandbox.find_bwrap()
    except sandbox.SandboxError as exc:
        return Line(SETUP, name, Status.FAIL, "bubblewrap (bwrap) is not installed", _fix_of(str(exc)))
    why = sandbox.refusal(bwrap)
    if why is not None:
        return Line(SETUP, name, Status.FAIL, why.split(";")[0], why.split("; ", 1)[-1])
    return Line(SETUP, name, Status.OK, f"{bwrap} works: runs are isolated by default")


def limits_store(info) -> Line:
    name = "limits store"
    storage = info.limits_storage if info is not None else "memory://"
    if not storage.startswith(("redis://", "rediss://")):
        return Line(SETUP, name, Status.OK, f"{storage} (counts kept in the proxy)")
    parts = urlsplit(storage)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            answer = conn.recv(64)
    except OSError as exc:
        return Line(
            SETUP,
            name,
            Status.FAIL,
            f"{storage}: {exc.strerror or exc}",
            "start Redis, or restart the proxy with --limits-storage memory://",
        )
    if not answer.startswith((b"+PONG", b"-NOAUTH")):
        return Line(SETUP, name, Status.FAIL, f"{storage} answered {answer[:30]!r}, not PONG", "check the address")
    return Line(SETUP, name, Status.OK, f"{storage} answers")


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _fix_of(message: str) -> str:
    return message.split("; ", 1)[1] if "; " in message else message
