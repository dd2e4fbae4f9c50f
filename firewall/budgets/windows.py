"""Calendar windows in UTC: the hour, the day, the week from Monday, the month."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

PERIODS = ("hour", "day", "week", "month")


def window(period: str, now: float) -> tuple[float, float]:
    """(start, end) in epoch seconds of the `period` window that holds `now`; end is exclusive."""
    moment = datetime.fromtimestamp(now, UTC)
    if period == "hour":
        start = moment.replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=1)
    elif period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
    elif period == "week":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=moment.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    else:
        raise ValueError(f"unknown budget period {period!r}; expected one of {', '.join(PERIODS)}")
    return start.timestamp(), end.timestamp()


def window_id(period: str, now: float) -> str:
    """A name for the window holding `now`, part of its counter's key: `2026-12-07` for a day."""
    start, _ = window(period, now)
    return datetime.fromtimestamp(start, UTC).strftime(_ID_FORMATS[period])


_ID_FORMATS = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "week": "%Y-%m-%d/w", "month": "%Y-%m"}
