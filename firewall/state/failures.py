"""The last line between an exception and the user: one line on stderr, the traceback in a log.

Commands turn the errors they expect into `fail(...)`; this catches what they did not expect
(a read-only or full disk, a damaged database, a bug) so no traceback reaches a terminal.
The line says what failed and where, and how to fix it; the details go to `cli.log` in the
state folder (or a private file in the temporary folder when the state folder is not writable).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
import tempfile
import time
import traceback
from pathlib import Path

from firewall.state.home import HOME_ENV, SECRET_FILE_MODE, default_root

LOG_NAME = "cli.log"
LOG_LIMIT = 1 << 20  # bytes; a bigger log is started afresh (it holds tracebacks, not history)


def describe_os_error(exc: OSError) -> str:
    """`exc` as one line naming the file, what went wrong and the fix."""
    where = exc.filename or f"the state folder {_root_or_unknown()}"
    what = exc.strerror or str(exc)
    if exc.errno == errno.EROFS:
        return f"{where}: the file system is read-only; remount it read-write or set {HOME_ENV} to a writable folder"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{where}: no space left on the device ({what}); free some space (or raise the quota) and run it again"
    if exc.errno == errno.EFBIG:
        return f"{where}: a file grew past the size limit ({what}); free space, or raise `ulimit -f`, and run it again"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{where}: permission denied; check its owner and mode (ls -ld {where}) or set {HOME_ENV}"
    return f"{where}: {what}"


def describe_database_error(exc: sqlite3.Error, database: Path) -> str:
    """`exc` from the state database as one line, with the fix; how to recover it only when damaged."""
    text = str(exc)
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_FULL") or (name.startswith("SQLITE_IOERR") and _nearly_full(database.parent)):
        return f"{database}: no space left on the device ({text}); free some space and run it again"
    if name.startswith("SQLITE_IOERR"):
        return (
            f"{database}: cannot read or write the state database ({text}); check free space "
            f"(df -h {database.parent}), `ulimit -f` and the disk, then run it again"
        )
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")):
        return f"{database}: cannot write the state database ({text}); set {HOME_ENV} to a writable folder"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return f"{database}: the state database is busy ({text}); run it again in a moment"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        return (
            f"{database}: the state database is damaged ({text}); recover what it holds with "
            f"`sqlite3 {database} .recover | sqlite3 {database}.recovered`, move the recovered file in its "
            f"place (or the damaged one aside, to start afresh) and run `firewall audit verify`"
        )
    return f"{database}: {text}"


def _root_or_unknown() -> str:
    try:
        return str(default_root())
    except Exception:
        return "(unknown)"


def _nearly_full(folder: Path, room: int = 1 << 20) -> bool:
    """Whether the file system of `folder` has less than `room` bytes free (SQLite calls a full
    disk a "disk I/O error" when it cannot grow its shared-memory file)."""
    try:
        found = os.statvfs(folder)
    except OSError:
        return False
    return found.f_bavail * found.f_frsize < room


def describe(exc: BaseException) -> str:
    if isinstance(exc, sqlite3.Error):
        return describe_database_error(exc, default_root() / "firewall.db")
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def log_exception(exc: BaseException) -> Path | None:
    """Append `exc`'s traceback to the CLI log; the log's path, or None when none could be written."""
    text = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(sys.argv)}\n" + "".join(traceback.format_exception(exc))
    for path in _log_places():
        try:
            if path.exists() and path.stat().st_size > LOG_LIMIT:
                path.unlink()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, SECRET_FILE_MODE)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(text + "\n")
            return path
        except OSError:
            continue
    return None


def report(exc: BaseException) -> int:
    """Log `exc`, print its one line on stderr; the exit code to end with."""
    logged = log_exception(exc)
    details = f" (details in {logged})" if logged else ""
    print(f"error: {describe(exc)}{details}", file=sys.stderr)
    return 1


def _log_places() -> list[Path]:
    places = []
    try:
        root = default_root()
        if root.is_dir():
            places.append(root / LOG_NAME)
    except Exception:
        pass
    places.append(Path(tempfile.gettempdir()) / f"agent-firewall-{os.getuid()}-{LOG_NAME}")
    return places
