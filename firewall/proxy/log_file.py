"""The proxy's log file (`run/proxy.log`): owner-only, rotated by size, shared by processes.

Every proxy of a state folder (the shared one, and those `firewall run` starts for one
command) appends to the same file. Rotation is by size (MAX_BYTES, BACKUPS older files:
proxy.log.1 ... proxy.log.3), so a log can never fill the disk the audit database lives
on. A process that finds the file was rotated by another one reopens it (as
`WatchedFileHandler` does) instead of writing on into the renamed file.
"""

from __future__ import annotations

import logging.handlers
import os
import sys
from pathlib import Path

MAX_BYTES = 5 * 1024 * 1024
BACKUPS = 3
MODE = 0o600


class ProxyLogHandler(logging.handlers.RotatingFileHandler):
    def __init__(self, path: os.PathLike | str, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self._identity = self._stat_identity()

    def _open(self):
        # Owner-only from the first byte, a rotated-in file too (the default mode follows the umask).
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, MODE)
        os.chmod(self.baseFilename, MODE)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    def _stat_identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.baseFilename)
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    def emit(self, record: logging.LogRecord) -> None:
        identity = self._stat_identity()
        if identity != self._identity and self.stream is not None:  # another process rotated the file
            self.stream.close()
            self.stream = self._open()
            identity = self._stat_identity()
        self._identity = identity
        super().emit(record)

    def doRollover(self) -> None:
        super().doRollover()
        self._identity = self._stat_identity()


def configure_logging(log_file: Path | None, worker: int | None = None) -> None:
    # A file is owner-only, like every file in the state folder, and rotated by size.
    handler = ProxyLogHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    who = f" worker {worker}" if worker is not None else ""  # the workers of one proxy share its log
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s %(name)s{who}: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("firewall").setLevel(logging.INFO)
