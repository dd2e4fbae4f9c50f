"""How `--help` reads: metavars a person writes (`--since WHEN`, `CMD...`), not Python types
(`<str>`, `<list[Path]>`, `{command}`), and docstring paragraphs wrapped once, by the terminal.

Typer 0.29 prints each parameter's Python type and keeps a docstring's own line breaks inside
rich's wrapping, so every line wrapped twice. These adjustments are Typer's own hooks,
replaced once when the CLI loads; nothing else in Typer changes.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, get_args, get_origin

import typer.core
import typer.rich_utils

_DONE = False


def metavar(param: Any) -> str | None:
    """What a value of `param` is called in help: its metavar, or one made from its type and name."""
    if param.metavar is not None:
        return str(param.metavar)
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    annotation = param.type_descriptor.annotation
    if get_origin(annotation) is list:
        annotation = get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "PATH"
    if annotation in (int, float):
        return "N"
    return str(param.name or "value").upper()


def _option_type(self: Any, ctx: Any) -> str | None:
    return metavar(self)


def _argument_type(self: Any, ctx: Any) -> str | None:
    return None  # the argument's name column already says what it is


def _argument_usage(self: Any) -> str:
    name = metavar(self) or "VALUE"
    name = name if self.required else f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


def _paragraphs(paragraphs: list[str], markup_mode: Any) -> str:
    """Paragraphs with their single line breaks joined (a paragraph starting with \\b is kept as is)."""
    return "\n\n".join(
        paragraph.replace("\b\n", "") if paragraph.startswith("\b") else " ".join(paragraph.split("\n"))
        for paragraph in paragraphs
    )


def _first_paragraph_joined(make: Any) -> Any:
    def make_command_help(*, help_text: str, markup_mode: Any) -> Any:
        first, _, rest = inspect.cleandoc(help_text).partition("\n\n")
        if not first.startswith("\b"):
            first = " ".join(first.split("\n"))
        return make(help_text=f"{first}\n\n{rest}" if rest else first, markup_mode=markup_mode)

    return make_command_help


def install() -> None:
    global _DONE
    if _DONE:
        return
    _DONE = True
    typer.core.TyperOption.display_type_rich = _option_type  # type: ignore[method-assign]
    typer.core.TyperArgument.display_type_rich = _argument_type  # type: ignore[method-assign]
    typer.core.TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]
    typer.rich_utils._fix_linebreaks = _paragraphs
    typer.rich_utils._make_command_help = _first_paragraph_joined(typer.rich_utils._make_command_help)
