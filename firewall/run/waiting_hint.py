"""`firewall run`'s hint: one line on stderr when its agent waits for a person's approval.

A thread polls the state database while the agent runs (every `interval`
seconds, on its own connection) and names each new pending request of the
agent once, with the command that answers it. It stops when the agent exits.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from firewall.text import printable, shorten, terminal_width, wrap_words

if TYPE_CHECKING:
    from firewall.approvals import records

log = logging.getLogger("firewall.run")
INTERVAL = 0.5
ANSWER = "`firewall approvals`"  # what a person types: never broken across lines
WHERE = f"{ANSWER} in another terminal"  # kept on one line with it
INDENT = "  "  # a hint's continuation lines
MIN_URL = 24  # a URL is never shortened below this (a terminal narrower still gets longer lines)


class WaitingHint:
    def __init__(
        self, database: Path, agent: str, since: float, *, out: TextIO = sys.stderr, interval: float = INTERVAL
    ):
        self.database = database
        self.agent = agent
        self.since = since  # requests held before the agent started are not its own
        self.out = out
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="firewall-approval-hint", daemon=True)
        self._told: set[str] = set()

    def __enter__(self) -> WaitingHint:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        if self._stop.wait(self.interval):
            return  # an agent done this soon never waited for anyone: no store loaded
        from firewall.approvals import store
        from firewall.state.db import connect

        db = connect(self.database)  # plain sqlite3: pending() needs no sqlite_utils
        try:
            while True:
                try:
                    self._tell(store.pending(db))
                except Exception as exc:  # a hint is a courtesy: never stop the agent for it
                    log.debug("looking for pending approvals failed: %s", exc)
                if self._stop.wait(self.interval):
                    break
        finally:
            db.close()

    def _tell(self, rows: list[records.Approval]) -> None:
        for row in rows:
            if row.agent == self.agent and row.created >= self.since and row.id not in self._told:
                self._told.add(row.id)
                self.out.write("".join(f"{line}\n" for line in hint_lines(row, terminal_width(self.out))))
                self.out.flush()


def hint_lines(row: records.Approval, width: int | None) -> list[str]:
    """The hint for `row`: one line, or at `width` columns its URL shortened in the middle (the
    host and the end of the path stay) and the line broken at spaces; the approval id and the
    command to type are never cut."""

    def text(url: str) -> str:
        return (
            f"firewall: agent {printable(row.agent)} is waiting for approval of {printable(row.method)} "
            f"{url} ({row.id}); answer it with {ANSWER} in another terminal"
        )

    line = text(printable(row.url))
    if width is None or len(line) <= width:
        return [line]
    url = shorten(printable(row.url), max(width - len(INDENT), MIN_URL), middle=True)
    return wrap_words(text(url), width, INDENT, (WHERE,))
