"""The root group `firewall` runs as: each command's modules load when the command line names it.

Registering every command imports every command's modules (the policy compiler and lark, the
audit log, approvals, the vault and cryptography, sqlite_utils): most of what `firewall --help`
cost (docs/performance.md, "Start-up"). This group lists each command by the name and help line
main.py gives it, without loading it, and loads a command when click resolves it: when it is
run, asked for its own help, or completed by the shell (click's `resolve_command` in each case).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from firewall.cli.main import LazyCommand


class LazyRoot(TyperGroup):
    """A root group whose commands are `lazy`'s: each stands in by its name and help line (what
    listing, suggesting and completing a command name read) until click resolves it, which
    loads it (running it, its own help, completing its options)."""

    lazy: Mapping[str, LazyCommand] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.standing_in = {name for name in self.lazy if name not in self.commands}
        for name in self.standing_in:
            self.commands[name] = TyperCommand(name, help=self.lazy[name].help)
        self.commands = {name: self.commands[name] for name in self.lazy} | self.commands  # the table's order

    def resolve_command(self, ctx: _click.Context, args: list[str]) -> Any:
        if args and args[0] in self.standing_in:
            self.load(args[0])
        return super().resolve_command(ctx, args)

    def load(self, name: str) -> _click.Command:
        """The command `name`, built as the whole app builds it (Typer's own conversion)."""
        if name in self.standing_in:
            holder = typer.Typer(pretty_exceptions_enable=False)
            self.lazy[name].add(holder)
            self.commands[name] = typer.main.get_group(holder).commands[name]
            self.standing_in.discard(name)
        return self.commands[name]
