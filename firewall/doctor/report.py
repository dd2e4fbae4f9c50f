"""The doctor's report: a table for people, JSON for programs."""

from __future__ import annotations

import json

from firewall.doctor.line import Line, Status
from firewall.text import wrap_words

MARKS = {Status.OK: "ok", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "-"}


def table(lines: list[Line], columns: int | None = None) -> str:
    """The report for people; with `columns` (a terminal's width) a long fix wraps at spaces under
    its own start instead of where the terminal would cut it."""
    width = max(len(line.name) for line in lines)
    out = []
    area = None
    for line in lines:
        if line.area != area:
            area = line.area
            out.append(f"{area}:")
        out.append(f"  {MARKS[line.status]:<4}  {line.name:<{width}}  {line.detail}")
        if line.fix and line.status in (Status.FAIL, Status.WARN):
            out.extend(_fix_lines(f"  {'':<4}  {'':<{width}}  ", line.fix, columns))
    failed = sum(line.status is Status.FAIL for line in lines)
    out.append(f"{failed} problem(s)" if failed else "all good")
    return "\n".join(out)


def _fix_lines(margin: str, fix: str, columns: int | None) -> list[str]:
    room = (columns or 0) - len(margin)
    if room < 30:  # piped (whole lines, as programs expect), or too narrow to wrap usefully
        return [f"{margin}fix: {fix}"]
    wrapped = wrap_words(f"fix: {fix}", room, indent="     ")
    return [margin + line for line in wrapped]


def as_json(lines: list[Line]) -> str:
    return json.dumps(
        {"ok": not failed(lines), "lines": [line.to_json() for line in lines]},
        indent=2,
    )


def failed(lines: list[Line]) -> bool:
    return any(line.status is Status.FAIL for line in lines)
