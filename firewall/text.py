"""Small text forms shared by every layer: durations people type, times shown in UTC, one-line text.

One duration grammar for the policy language and every command line option, so a user learns one:
a number with a unit (`250ms`, `30s`, `15m`, `1.5h`, `7d`, `2w`); a bare number is seconds.
"""

from __future__ import annotations

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
