"""`firewall approvals`: watch for held requests and ask a person about each, in the terminal.

The oldest pending request is shown with its context and a countdown; one key
decides it (a: allow once, s: allow it and add the rule that lets it through to the policy,
g: allow its rule for its agent for a while, d: deny, q: quit). Others queue below it in
order. A request answered elsewhere or expired disappears. A new request rings the terminal
bell.

`s` shows the rule as a diff of the policy's files first (rule_change.py); `y` allows the
request and puts the policy with the rule in force as a new version (the `adopt` the CLI
passes in: cli/applying.py, as `policy apply`), anything else goes back to the request with
nothing changed. A rule that breaks one of the policy's tests is not added (the request is
allowed once); a policy not from files this person can edit here, or a prompt started with
`--suggest-to FILE` (or without `adopt`), writes the rule to a file for review instead.
"""

from __future__ import annotations

import os
import select
import shutil
import sqlite3
import termios
import time
import tty
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from firewall.approvals import records, store
from firewall.approvals.records import Approval
from firewall.approvals.render import choices_lines, duration, request_lines, wrap_lines
from firewall.state.db import open_database
from firewall.text import printable

if TYPE_CHECKING:
    from firewall.approvals.rule_change import RuleChange

# Puts a confirmed rule change in force (cli/applying.py): the lines to show, or SuggestError saying why not.
Adopt = Callable[[object, "RuleChange"], list[str]]

YES = ("y", "Y")
NO = ("n", "N", "q", "Q", "\r", "\n", "\x1b")  # Enter and Esc too: the default is no
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


def screen(
    queue: list[Approval],
    now: float,
    grant_for: float,
    notices: list[str],
    width: int = 200,
    adds_rule: bool = False,
) -> str:
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
            "[s] allow and add a rule" if adds_rule else "[s] allow once, suggest a rule",
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
    return _with_notices(lines, notices, width)


def confirm_screen(change: RuleChange, now: float, notices: list[str], width: int = 200) -> str:
    """The rule `s` would add, as a diff of the policy's files, and the question."""
    row = change.approval
    lines = [f"Add a rule to the policy for request {row.id}?", ""]
    lines += request_lines(row, now)
    lines += [""]
    for rule, where in zip(change.rules, change.where, strict=True):
        lines += [f"The rule, for {where}:", f"  {printable(rule)}"]
    lines += [""] + [printable(line) for line in change.diff.splitlines()] + [""]
    lines.append(
        f"With it the policy's {change.tests} expectation(s) hold. Yes allows the request and applies "
        f"the policy with the rule as a new version (in force now: version {change.against})."
    )
    lines += [""]
    lines += choices_lines(["[y] yes, allow and apply", "[n] no, back (nothing changes)"], max(width, MIN_WIDTH))
    return _with_notices(lines, notices, width)


def _with_notices(lines: list[str], notices: list[str], width: int) -> str:
    if notices:
        lines = lines + ["", "Recent:"] + [f"  {notice}" for notice in notices]
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
        adopt: Adopt | None = None,
    ):
        self.database = database
        self.grant_for = grant_for
        self.user = user
        self.out = out
        self.keys = keys
        self.clock = clock
        self.width = width  # asked at every redraw: the terminal may be resized
        self.suggest_to = suggest_to  # given: `s` writes rules there, for review, and applies none
        self.adopt = adopt  # puts a confirmed rule in force (cli/applying.py); None: `s` writes for review
        self.via = via  # recorded with each answer: "prompt on pts/3"
        self.paint = paint or (lambda text: text)  # colours for a terminal that takes them (cli/colour.py)
        self.notices: deque[str] = deque(maxlen=NOTICES_SHOWN)
        self.seen: set[str] = set()
        self.answered: set[str] = set()
        self.change: RuleChange | None = None  # the rule `s` shows, waiting for y or n

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
                if self.change is not None and self.change.approval.id not in {row.id for row in queue}:
                    self.notices.append(f"{self.change.approval.id} is no longer waiting: the rule was not added")
                    self.change = None
                self.out.write(CLEAR + self.paint(self._screen(queue, now)))
                self.out.flush()
                key = self.keys.read(TICK)
                if self.change is not None:
                    self._confirm(db, key)
                    continue
                if key in ("q", "Q"):
                    return
                if queue and key in ("a", "s", "g", "d"):
                    self._answer(db, queue[0], key)
                    self.keys.discard()
        finally:
            db.close()

    def _screen(self, queue: list[Approval], now: float) -> str:
        notices = list(self.notices)
        if self.change is not None:
            return confirm_screen(self.change, now, notices, self.width())
        return screen(queue, now, self.grant_for, notices, self.width(), self._adds_rules)

    @property
    def _adds_rules(self) -> bool:
        return self.adopt is not None and self.suggest_to is None

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

    def _answer(self, db, row: Approval, key: str, review: bool = False) -> None:
        """Answer `row` by `key`; `s` writes the rule for review when the prompt adds none (or `review`)."""
        if key == "s" and self._adds_rules and not review:
            self._propose_change(db, row)
            return
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

    def _propose_change(self, db, row: Approval) -> None:
        """`s`: the rule for `row` as a change of the policy's files, to confirm (self.change); when
        there is none to apply, say why and allow once (writing the rule for review when the files
        are not editable here)."""
        from firewall.approvals.rule_change import NotInFiles, plan
        from firewall.approvals.suggest_rule import SuggestError

        try:
            change = plan(db, row, f"{self.user} via {self.via}")
        except NotInFiles as exc:
            self.notices.append(f"{exc}; the rule is written for review instead")
            self._answer(db, row, "s", review=True)
            return
        except SuggestError as exc:
            self.notices.append(f"no rule suggested: {exc}")
            self._answer(db, row, "a")
            return
        if change.failures:
            more = f" (and {len(change.failures) - 1} more)" if len(change.failures) > 1 else ""
            self.notices.append(
                f"the rule was not added: with it {len(change.failures)} of {change.tests} expectation(s) of "
                f"the policy do not hold: FAIL {change.failures[0]}{more}"
            )
            self._answer(db, row, "a")
            return
        self.change = change

    def _confirm(self, db, key: str | None) -> None:
        change = self.change
        assert change is not None
        if key in NO:
            self.change = None
            self.notices.append(f"the rule was not added; {change.approval.id} is still waiting")
            self.keys.discard()
        elif key in YES:
            self.change = None
            self._adopt(db, change)
            self.keys.discard()

    def _adopt(self, db, change: RuleChange) -> None:
        """Allow the request, then put the policy with the rule in force (nothing is added when the
        request can no longer be allowed)."""
        from firewall.approvals.suggest_rule import SuggestError

        row = change.approval
        self.answered.add(row.id)
        try:
            store.answer(db, row.id, approve=True, by=self.user, now=self.clock(), grant_for=None, via=self.via)
        except records.ApprovalError as exc:
            self.notices.append(f"{exc}; the rule was not added")
            return
        self.notices.append(f"approved {row.id} {printable(row.method)} {printable(row.url)}")
        assert self.adopt is not None
        try:
            lines = self.adopt(db, change)
        except (SuggestError, sqlite3.Error, OSError) as exc:
            self.notices.append(f"the rule was not added: {exc}")
            return
        self.notices.extend(lines)

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
