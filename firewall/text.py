"""Small text forms shared by every layer: durations people type, times shown in UTC, one-line text.

One duration grammar for the policy language and every command line option, so a user learns one:
a number with a unit (`250ms`, `30s`, `15m`, `1.5h`, `7d`, `2w`); a bare number is seconds.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
DURATION_EXAMPLES = "250ms, 30s, 15m, 1.5h, 7d or 2w"
_DURATION = re.compile(r"(\d{1,12}(?:\.\d{1,9})?)(ms|s|m|h|d|w)?")


def parse_duration(text: str) -> float | None:
    """Seconds in a duration (see the module's docstring), or None when `text` is not one."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        return None
    return float(match[1]) * DURATION_UNITS[match[2] or "s"]


def iso_utc(epoch: float) -> str:
    """`2025-01-31T12:00:00.123Z`: how times are stored and shown."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def printable(value: object) -> str:
    """`value` as one line of text; control characters shown escaped.

    Recorded fields come from agents' requests, so a host or path may carry
    newlines or terminal escape sequences meant to garble a table.
    """
    text = "-" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


ELLIPSIS = "…"


def shorten(text: str, width: int, middle: bool = False) -> str:
    """`text` cut to `width` characters with an ellipsis: at the end, or in the middle (a URL:
    the host and the end of the path stay, as the audit table shows them)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    if not middle:
        return text[: width - 1] + ELLIPSIS
    head = (width - 1) * 3 // 5  # the host matters most, then the end of the path
    tail = width - 1 - head
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


def wrap_words(text: str, width: int, indent: str = "  ", keep: tuple[str, ...] = ()) -> list[str]:
    """`text` broken at spaces into lines of at most `width` columns, continuations indented.

    No word is cut (one wider than a line stays whole on its own line) and no phrase of `keep`
    (a command a person must type) is broken across lines."""
    import textwrap

    glue = "\x00"  # never in `printable` text: it shows control characters escaped
    for phrase in keep:
        text = text.replace(phrase, phrase.replace(" ", glue))
    lines = textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
    return [line.replace(glue, " ") for line in lines] or [text.replace(glue, " ")]


def terminal_width(stream: object) -> int | None:
    """The width lines written to `stream` are fitted to: COLUMNS when set, else the width of the
    terminal `stream` is; None when it is neither (piped or captured: lines are left whole, as
    programs that read them expect)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        fileno = stream.fileno()  # type: ignore[attr-defined]
        return os.get_terminal_size(fileno).columns if os.isatty(fileno) else None
    except (AttributeError, OSError, ValueError):
        return None
