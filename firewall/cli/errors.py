"""Turning domain errors into a clean exit: one message on stderr, a non-zero code."""

from __future__ import annotations

import sys
from typing import NoReturn


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`.

    SystemExit rather than typer.Exit: `firewall run` calls this without loading Typer
    (firewall/cli/run_plain.py); Typer and Click let SystemExit through unchanged.
    """
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
