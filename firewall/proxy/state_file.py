"""A running proxy's state file (`run/proxy.json` for the shared proxy): where it listens, and
what is wrong with it right now, for `firewall run`, `proxy status` and `proxy stop`.

Written once the proxy listens, then again whenever a problem starts or ends (the policy
in force cannot be replaced, the vault cannot be read, the limits store does not answer),
always whole and atomically.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from firewall.state.home import write_private_file


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._base: dict | None = None  # pid, port, ...: set once the proxy listens
        self._problems: dict[str, str] = {}  # what failed -> what happened and what the proxy does meanwhile
        self._lock = threading.Lock()
        self._closed = False

    def listening(self, base: dict) -> None:
        with self._lock:
            self._base = base
            self._write()

    def problem(self, what: str, message: str | None) -> None:
        """Record that `what` fails (with `message`), or no longer does (None). Any thread."""
        with self._lock:
            if message is None:
                self._problems.pop(what, None)
            else:
                self._problems[what] = message
            if self._base is not None:
                self._write()

    def remove(self) -> None:
        with self._lock:
            self._closed = True
            self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        if self._closed:
            return
        problems = [{"what": what, "message": message} for what, message in self._problems.items()]
        write_private_file(self.path, json.dumps({**self._base, "problems": problems}).encode())
