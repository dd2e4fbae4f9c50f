"""Approval requests and grants as text, for `firewall approvals list|grants` and the prompt.

Fields come from agents' requests, so every one is passed through `printable`
(control characters escaped) before it reaches a terminal.
"""

from __future__ import annotations

import json
import re
import textwrap

from firewall.approvals.records import PENDING, Approval, Grant
from firewall.approvals.store import describe_outcome
from firewall.text import iso_utc, printable


def duration(seconds: float) -> str:
    """`1h02m`, `9m05s`, `42s`: a whole number of seconds, rounded up."""
    total = max(0, int(-(-seconds // 1)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def request_lines(row: Approval, now: float) -> list[str]:
    """A held request as a person judges it: who, what, which rule and why, the body, the clock."""
    if row.state == PENDING:
        status = f"expires in {duration(row.expires - now)}"
    else:
        status = describe_outcome(row)
        if row.used_by_request:
            status += f"; used by {row.used_by_request}"
    lines = [
        f"{row.id}  {status}",
        f"  agent    {printable(row.agent)}",
        f"  request  {printable(row.method)} {printable(row.url)}",
        f"  rule     {printable(row.rule)}  {printable(row.rule_text)}",
    ]
    if row.reason:
        lines.append(f"  reason   {printable(row.reason)}")
    lines.append(f"  body     {printable(row.preview)}")
    return lines


_HANGING = re.compile(r" *(?:\S+ {2,})?")  # "  agent    ": continuation lines start under the value


def wrap_line(line: str, width: int, indent: str | None = None) -> list[str]:
    """`line` broken at spaces so no piece is wider than `width`; continuation pieces start under
    the line's value (`  request  POST https://…` continues under `POST`), or nearer the left edge
    when a word would not fit there. Only a word wider than a whole line (a long URL) is cut."""
    if len(line) <= width:
        return [line]
    if indent is None:
        indent = " " * _HANGING.match(line).end()  # type: ignore[union-attr]
        longest = max(len(word) for word in line.split())
        if longest > width - len(indent):
            indent = " " * (len(line) - len(line.lstrip()) + 2)
    return textwrap.wrap(line, width, subsequent_indent=indent[: width // 2], break_on_hyphens=False) or [line]


def wrap_lines(lines: list[str], width: int) -> list[str]:
    return [piece for line in lines for piece in wrap_line(line, width)]


def choices_lines(choices: list[str], width: int, indent: str = "  ", gap: str = "   ") -> list[str]:
    """Key choices (`[a] allow once`, …) packed into lines of `width`, broken between choices; a
    choice wider than a line gets lines of its own, continued under its text."""
    lines: list[str] = []
    current = ""
    for choice in choices:
        candidate = f"{current}{gap}{choice}" if current else indent + choice
        if len(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = indent + choice
        if len(current) > width:
            lines += wrap_line(current, width, indent + " " * (choice.find("] ") + 2))
            current = ""
    return lines + ([current] if current else [])


def requests_text(rows: list[Approval], now: float) -> str:
    return "\n\n".join("\n".join(request_lines(row, now)) for row in rows)


def grant_line(grant: Grant, now: float) -> str:
    return (
        f"{grant.id}  agent {printable(grant.agent)}  rule {printable(grant.rule)}  "
        f"{printable(grant.rule_text)}  by {printable(grant.created_by)}, "
        f"{duration(grant.expires - now)} left (until {iso_utc(grant.expires)})"
    )


def requests_json(rows: list[Approval], now: float) -> str:
    return json.dumps(
        [{**row.as_json(), "expires_in": max(0.0, round(row.expires - now, 1))} for row in rows], indent=2
    )


def grants_json(grants: list[Grant], now: float) -> str:
    return json.dumps(
        [{**grant.as_json(), "expires_in": max(0.0, round(grant.expires - now, 1))} for grant in grants], indent=2
    )
