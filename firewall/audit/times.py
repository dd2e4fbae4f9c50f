"""Reading the times people type: `30s`, `15m`, `1h`, `7d`, or an ISO date or datetime."""

from __future__ import annotations

import re
from datetime import UTC, datetime

ACCEPTED = "a duration like 30s, 15m, 1h, 7d or an ISO date/time like 2025-01-31 or 2025-01-31T12:00:00Z"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d{1,12})([smhd])")


class TimeSpecError(ValueError):
    """A time the user typed is in none of the accepted forms."""


def parse_duration(text: str) -> float | None:
    """Seconds in `30s`/`15m`/`1h`/`7d`, or None when `text` is not a duration."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        return None
    return int(match[1]) * _UNITS[match[2]]


def parse_time(text: str, now: float) -> float:
    """The epoch time `text` names: a duration counts back from `now`.

    A date or datetime without a UTC offset is taken as UTC, the zone the
    audit log shows. Times before 1970 are clamped to 0.
    """
    seconds = parse_duration(text)
    if seconds is not None:
        return max(now - seconds, 0.0)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TimeSpecError(f"expected {ACCEPTED}, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(moment.timestamp(), 0.0)
