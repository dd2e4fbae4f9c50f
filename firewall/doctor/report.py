"""The doctor's report: a table for people, JSON for programs."""

from __future__ import annotations

import json

from firewall.doctor.line import Line, Status

MARKS = {Status.OK: "ok", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "-"}


def table(lines: list[Line]) -> str:
    width = max(len(line.name) for line in lines)
    out = []
    area = None
    for line in lines:
        if line.area != area:
            area = line.area
            out.append(f"{area}:")
        out.append(f"  {MARKS[line.status]:<4}  {line.name:<{width}}  {line.detail}")
        if line.fix and line.status in (Status.FAIL, Status.WARN):
            out.append(f"  {'':<4}  {'':<{width}}  fix: {line.fix}")
    failed = sum(line.status is Status.FAIL for line in lines)
    out.append(f"{failed} problem(s)" if failed else "all good")
    return "\n".join(out)


def as_json(lines: list[Line]) -> str:
    return json.dumps(
        {"ok": not failed(lines), "lines": [line.to_json() for line in lines]},
        indent=2,
    )


def failed(lines: list[Line]) -> bool:
    return any(line.status is Status.FAIL for line in lines)
