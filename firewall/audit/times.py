"""Reading the times people type: a duration back from now (firewall.text), or an ISO date or datetime."""

from __future__ import annotations

from datetime import UTC, datetime

from firewall.text import DURATION_EXAMPLES, parse_duration

ACCEPTED = f"a duration like {DURATION_EXAMPLES} or an ISO date/time like 2025-01-31 or 2025-01-31T12:00:00Z"


class TimeSpecError(ValueError):
    """A time the user typed is in none of the accepted forms."""


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
