"""`firewall approvals`: watch for held requests and ask a person about each, in the terminal.

The oldest pending request is shown with its context and a countdown; one key
decides it (a: allow once, s: allow once and write down the rule that would let it
through next time, for review (suggest_rule.py), g: allow its rule for its agent for a while,
d: deny, q: quit). Others queue below it in order. A request answered elsewhere or
expired disappears. A new request rings the terminal bell.
"""

from __future__ import annotations

import os
import select
import shutil
import termios
import time
import tty
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TextIO

from firewall.approvals import records, store
from firewall.approvals.records import Approval
from firewall.approvals.render import choices_lines, duration, request_lines, wrap_lines
from firewall.state.db import open_database
from firewall.text import printable

TICK = 0.25  # seconds between looks at the database (and countdown updates)
QUEUE_SHOWN = 5
NOTICES_SHOWN = 5
MIN_WIDTH = 40  # narrower than this, lines are cut anyway; wrapping keeps them readable
BELL = "\a"
CLEAR = "\x1b[H\x1b[2J"


def prompt_via(fd: int) -> str:
    """Where the prompt's answers come from, for the audit table: `prompt on pts/3`."""
    try:
        name = os.ttyname(fd)
    except OSError:
        return "prompt"
    return f"prompt on {name.removeprefix('/dev/')}"


def terminal_width() -> int:
    return shutil.get_terminal_size().columns


def screen(queue: list[Approval], now: float, grant_for: float, notices: list[str], width: int = 200) -> str:
    """The whole screen for this moment: the request being asked about, what waits behind it,
    and what happened recently; every line broken at spaces to fit `width` columns (a terminal
    that wraps by itself cuts words, and its wrapped lines lose their indentation)."""
    lines = []
    if not queue:
        lines += ["Waiting for requests that need approval (q quits).", ""]
    else:
        head = queue[0]
        lines += [f"Approval needed: request 1 of {len(queue)}", ""]
        lines += request_lines(head, now)
        lines += [""]
        choices = [
            "[a] allow once",
            "[s] allow once, suggest a rule",
            f"[g] allow rule {printable(head.rule)} for agent {printable(head.agent)} for {duration(grant_for)}",
            "[d] deny",
            "[q] quit",
        ]
        lines += choices_lines(choices, max(width, MIN_WIDTH))
        if len(queue) > 1:
            lines += ["", "Next:"]
            for row in queue[1 : 1 + QUEUE_SHOWN]:
                lines.append(
                    f"  {row.id}  {printable(row.agent)}  {printable(row.method)} {printable(row.url)}  "
                    f"(expires in {duration(row.expires - now)})"
                )
            if len(queue) > 1 + QUEUE_SHOWN:
                lines.append(f"  ... and {len(queue) - 1 - QUEUE_SHOWN} more")
    if notices:
        lines += ["", "Recent:"] + [f"  {notice}" for notice in notices]
    return "\n".join(wrap_lines(lines, max(width, MIN_WIDTH))) + "\n"


class Keys(Protocol):
    def read(self, timeout: float) -> str | None:
        """The next key pressed within `timeout` seconds, or None."""

    def discard(self) -> None:
        """Forget keys typed ahead, so they never answer a request not yet shown."""


class Prompt:
    """The interactive loop over the state database at `database`."""

    def __init__(
        self,
        database: Path,
        *,
        grant_for: float,
        user: str,
        out: TextIO,
        keys: Keys,
        clock: Callable[[], float] = time.time,
        width: Callable[[], int] = terminal_width,
        suggest_to: Path | None = None,
        via: str = "prompt",
        paint: Callable[[str], str] | None = None,
    ):
        self.database = database
        self.grant_for = grant_for
        self.user = user
        self.out = out
        self.keys = keys
        self.clock = clock
        self.width = width  # asked at every redraw: the terminal may be resized
        self.suggest_to = suggest_to  # where `s` writes rules; None: suggested.policy beside the policy
        self.via = via  # recorded with each answer: "prompt on pts/3"
        self.paint = paint or (lambda text: text)  # colours for a terminal that takes them (cli/colour.py)
        self.notices: deque[str] = deque(maxlen=NOTICES_SHOWN)
        self.seen: set[str] = set()
        self.answered: set[str] = set()

    def run(self) -> None:
        db = open_database(self.database)
        try:
            shown: list[Approval] = []
            while True:
                now = self.clock()
                store.expire_stale(db, now)
                queue = store.pending(db)
                self._note_gone(db, shown, queue)
                self._ring_for_new(queue)
                shown = queue
                self.out.write(CLEAR + self.paint(screen(queue, now, self.grant_for, list(self.notices), self.width())))
                self.out.flush()
                key = self.keys.read(TICK)
                if key in ("q", "Q"):
                    return
                if queue and key in ("a", "s", "g", "d"):
                    self._answer(db, queue[0], key)
                    self.keys.discard()
        finally:
            db.close()

    def _ring_for_new(self, queue: list[Approval]) -> None:
        new = {row.id for row in queue} - self.seen
        if new:
            self.out.write(BELL)
            self.seen |= new

    def _note_gone(self, db, shown: list[Approval], queue: list[Approval]) -> None:
        """Requests that left the queue without an answer from here: answered elsewhere, or expired."""
        still = {row.id for row in queue}
        for row in shown:
            if row.id not in still and row.id not in self.answered:
                now_row = store.get(db, row.id)
                if now_row is not None:
                    self.notices.append(
                        f"{row.id} {printable(row.method)} {printable(row.url)}: {store.describe_outcome(now_row)}"
                    )

    def _answer(self, db, row: Approval, key: str) -> None:
        self.answered.add(row.id)
        suggested = self._suggestion(db, row) if key == "s" else None
        try:
            answer = store.answer(
                db,
                row.id,
                approve=key != "d",
                by=self.user,
                now=self.clock(),
                grant_for=self.grant_for if key == "g" else None,
                via=self.via,
            )
        except records.ApprovalError as exc:
            self.notices.append(str(exc))
            return
        what = f"{printable(row.method)} {printable(row.url)}"
        if answer.grant is not None:
            self.notices.append(
                f"approved {row.id} {what}, and rule {printable(row.rule)} for agent "
                f"{printable(row.agent)} for {duration(self.grant_for)} ({answer.grant.id})"
            )
        else:
            self.notices.append(f"{answer.approval.state} {row.id} {what}")
        if suggested is not None:
            self._write(suggested)

    def _suggestion(self, db, row: Approval):
        """The rule `s` proposes for `row`, or None (said in a notice): made before the answer, so a
        request that cannot get one is still let through once, with the reason shown."""
        from firewall.approvals.suggest_rule import SuggestError, suggest_rule

        try:
            return suggest_rule(db, row, self.user, self.suggest_to)
        except SuggestError as exc:
            self.notices.append(f"no rule suggested: {exc}")
            return None

    def _write(self, suggested) -> None:
        from firewall.approvals.suggest_rule import SuggestError, write

        try:
            write(suggested)
        except SuggestError as exc:
            self.notices.append(str(exc))
            return
        for rule, where in zip(suggested.rules, suggested.where, strict=True):
            self.notices.append(f"suggested rule, for {where}: {printable(rule)}")
        self.notices.append(
            f"written to {printable(str(suggested.path))} for review (the policy's tests with it: "
            f"{suggested.tests_hold} hold, {suggested.tests_fail} do not); `firewall policy apply` puts it in force"
        )


class TerminalKeys:
    """Single key presses from the terminal `fd`: no Enter needed, no echo."""

    def __init__(self, fd: int):
        self.fd = fd

    def read(self, timeout: float) -> str | None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return None
        data = os.read(self.fd, 1)
        if not data:
            raise EOFError("the terminal closed")
        return data.decode(errors="replace")

    def discard(self) -> None:
        termios.tcflush(self.fd, termios.TCIFLUSH)


@contextmanager
def terminal_keys(fd: int) -> Iterator[TerminalKeys]:
    """The terminal in cbreak mode while the prompt runs; restored however it ends."""
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield TerminalKeys(fd)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
