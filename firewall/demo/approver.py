"""The person at the other terminal, played by the demo: it waits for the request the proxy holds
for approval and answers it with `firewall approvals approve ID`, as a script would, so the demo
shows the approval without asking anyone (it stays non-interactive)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from firewall.approvals import store
from firewall.state.db import open_database

POLL = 0.1  # seconds between looks at the database
PATIENCE = 60.0  # seconds the demo waits for a held request before giving up


@contextmanager
def approving(database: Path, approve: Callable[[str], None]) -> Iterator[None]:
    """While the block runs, answer the first request held for approval with `approve(id)`."""
    stop = threading.Event()
    thread = threading.Thread(target=_watch, args=(database, approve, stop), name="demo-approver", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=PATIENCE)


def _watch(database: Path, approve: Callable[[str], None], stop: threading.Event) -> None:
    deadline = time.monotonic() + PATIENCE
    db = open_database(database)  # the demo applied its policy, so the database is there
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            held = store.pending(db)
            if held:
                approve(held[0].id)
                return
            stop.wait(POLL)
    finally:
        db.close()
