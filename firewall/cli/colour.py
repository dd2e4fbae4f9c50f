"""Coloured words on a terminal only: rich decides from the stream (a TTY or not), `NO_COLOR`,
`FORCE_COLOR` and `TERM=dumb`; piped or captured output stays plain text, byte for byte.

rich is imported only when something is printed: Typer loads it anyway, but the helpers here are
also called by commands that must start fast.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TextIO

PASS = "green"
FAIL = "red"
ADDED = "green"
REMOVED = "red"
HUNK = "cyan"
# The audit `decision` column (firewall/policy/outcomes.py): let through green, refused red, held
# for a person yellow, over a limit or budget magenta, marked by report mode cyan.
LET_THROUGH, REFUSED, HELD, LIMITED, REPORTED = "green", "red", "yellow", "magenta", "cyan"
DECISIONS = {
    "allow": LET_THROUGH,
    "probe": LET_THROUGH,
    "approve": HELD,
    "approval_used": HELD,
    "approval_expired": HELD,
    "approval_cancelled": HELD,
    "approval_abandoned": HELD,
    "approval_denied": REFUSED,
    "block": REFUSED,
    "exfiltration": REFUSED,
    "error": REFUSED,
    "limit": LIMITED,
    "would_block": REPORTED,
    "would_approve": REPORTED,
    "would_limit": REPORTED,
}

Part = tuple[str, str | None]  # (text, rich style or None)


def echo(parts: Sequence[Part] | str, *, err: bool = False) -> None:
    """Print one line made of `parts`, each in its own style when the stream takes colour."""
    from rich.console import Console
    from rich.text import Text

    console = Console(stderr=err, highlight=False, markup=False, emoji=False, soft_wrap=True)
    text = Text()
    for chunk, style in [(parts, None)] if isinstance(parts, str) else parts:
        text.append(chunk, style=style or "")
    console.print(text)


def diff_style(line: str) -> str | None:
    """The colour of one line of a unified diff."""
    if line.startswith(("+++", "---")):
        return None
    if line.startswith("+"):
        return ADDED
    if line.startswith("-"):
        return REMOVED
    if line.startswith("@@"):
        return HUNK
    return None


def enabled(stream: TextIO) -> bool:
    """Whether `stream` takes colour, as rich decides it for `echo`: a terminal, not `TERM=dumb`,
    `NO_COLOR` unset (or `FORCE_COLOR` set)."""
    from rich.console import Console

    console = Console(file=stream)
    return console.color_system is not None and not console.no_color


def paint(text: str, style: str | None) -> str:
    """`text` wrapped in the ANSI codes of `style` (a colour name), for lines built as strings."""
    if not style or not text:
        return text
    from rich.color import ColorSystem
    from rich.style import Style

    return Style.parse(style).render(text, color_system=ColorSystem.STANDARD)


def decision_column(header_line: str) -> int | None:
    """Where the DECISION column starts in an aligned audit table (its header line), if shown."""
    found = re.search(r"(?:^|  )DECISION(?:  |$)", header_line)
    return None if found is None else found.start() + (2 if found.group().startswith("  ") else 0)


def decisions(line: str, start: int | None) -> str:
    """One aligned audit table line with its decision word coloured (the header is left plain)."""
    if start is None or len(line) <= start:
        return line
    word = line[start:].split(" ", 1)[0]
    style = DECISIONS.get(word)
    if style is None:
        return line
    return line[:start] + paint(word, style) + line[start + len(word) :]


_KEY = re.compile(r"(^  |   )\[([agdy])\]")  # a choice at the start of its line or after the gap between choices
_KEY_STYLES = {"a": PASS, "g": PASS, "d": FAIL, "y": PASS}
_DIFF = re.compile(r"^(?:[-+](?![-+]{2} )|@@ )")  # a diff line of the rule `s` shows (not its ---/+++ header)
_ANSWER = re.compile(r"^  (approved|denied) ")  # a line under "Recent:" for an answer given here
_HEADLINE = re.compile(r"^Approval needed: .*$")


def prompt_screen(text: str) -> str:
    """The approval prompt's screen (approvals/prompt.py `screen`) coloured: the headline yellow,
    the allowing keys green and deny red, the recent answers by what they were, and the diff of
    a rule to add (`confirm_screen`) as `policy show --diff` colours it."""
    lines = []
    for line in text.split("\n"):
        if _DIFF.match(line):
            lines.append(paint(line, diff_style(line)))
            continue
        line = _HEADLINE.sub(lambda m: paint(m.group(), HELD), line)
        line = _KEY.sub(lambda m: m.group(1) + paint(f"[{m.group(2)}]", _KEY_STYLES[m.group(2)]), line)
        line = _ANSWER.sub(lambda m: "  " + paint(m.group(1), PASS if m.group(1) == "approved" else FAIL) + " ", line)
        lines.append(line)
    return "\n".join(lines)
