"""Coloured words on a terminal only: rich decides from the stream (a TTY or not), `NO_COLOR`,
`FORCE_COLOR` and `TERM=dumb`; piped or captured output stays plain text, byte for byte.

rich is imported only when something is printed: Typer loads it anyway, but the helpers here are
also called by commands that must start fast.
"""

from __future__ import annotations

from collections.abc import Sequence

PASS = "green"
FAIL = "red"
ADDED = "green"
REMOVED = "red"
HUNK = "cyan"

Part = tuple[str, str | None]  # (text, rich style or None)


def echo(parts: Sequence[Part] | str, *, err: bool = False) -> None:
    """Print one line made of `parts`, each in its own style when the stream takes colour."""
    from rich.console import Console
    from rich.text import Text

    console = Console(stderr=err, highlight=False, markup=False, emoji=False, soft_wrap=True)
    text = Text()
    for chunk, style in [(parts, None)] if isinstance(parts, str) else parts:
        text.append(chunk, style=style or "")
    console.print(text)


def diff_style(line: str) -> str | None:
    """The colour of one line of a unified diff."""
    if line.startswith(("+++", "---")):
        return None
    if line.startswith("+"):
        return ADDED
    if line.startswith("-"):
        return REMOVED
    if line.startswith("@@"):
        return HUNK
    return None
