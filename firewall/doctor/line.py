"""One line of the doctor's report."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, with a caveat worth knowing
    FAIL = "fail"  # broken: `firewall doctor` exits non-zero
    SKIP = "skip"  # not there to check (a runtime not installed)


@dataclass(frozen=True)
class Line:
    area: str  # "setup" or "runtime"
    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_json(self) -> dict:
        return {**asdict(self), "status": self.status.value}
