"""Saying a repeated failure once: when it starts, now and then while it lasts, and when it ends.

A store that does not answer or a file that does not load fails on every request or every
poll (5 times a second); logging each time floods the log on the disk the audit database
lives on. An `Outage` logs the first failure, a reminder with a count every `remind`
seconds while it lasts, and one line when it ends. A known condition is logged without a
traceback; an unexpected exception gets one, the first time only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

REMIND_EVERY = 600.0  # seconds between "still failing" lines while an outage lasts


class Outage:
    """One condition that can fail over and over (the policy, the vault, the limits store, ...)."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        *,
        remind: float = REMIND_EVERY,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, str | None], None] | None = None,
    ) -> None:
        self.log = log
        self.what = what  # e.g. "reading the vault": the subject of every line
        self.remind = remind
        self.clock = clock
        self.on_change = on_change  # (what, message or None once it ends): for `proxy status`
        self.detail: str | None = None  # the first failure's message, while the outage lasts
        self.count = 0
        self._since = 0.0
        self._reminded = 0.0
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.detail is not None

    def failed(self, detail: str, *, unexpected: bool = False, consequence: str = "") -> None:
        """Another failure; logged only if it is the first of an outage, or a reminder is due.
        `consequence` says what the proxy does meanwhile (e.g. "keeping version 3")."""
        now = self.clock()
        with self._lock:
            self.count += 1
            first = self.detail is None
            if first:
                self.detail, self._since, self._reminded = detail, now, now
            elif now - self._reminded < self.remind:
                return
            else:
                self._reminded = now
            count, since = self.count, now - self._since
        tail = f"; {consequence}" if consequence else ""
        if first:
            self.log.error(
                "%s failed: %s%s (said once; a line follows when it works again)",
                self.what,
                detail,
                tail,
                exc_info=unexpected,
            )
            if self.on_change:
                self.on_change(self.what, f"{detail}{tail}")
        else:
            self.log.error("%s still failing: %d time(s) in %.0f s; last: %s%s", self.what, count, since, detail, tail)

    def ok(self) -> None:
        """A success: ends the outage, if there is one, with one line."""
        if self.detail is None:
            return
        with self._lock:
            if self.detail is None:
                return
            count, since = self.count, self.clock() - self._since
            self.detail, self.count = None, 0
        self.log.warning("%s works again, after %d failure(s) in %.1f s", self.what, count, since)
        if self.on_change:
            self.on_change(self.what, None)
