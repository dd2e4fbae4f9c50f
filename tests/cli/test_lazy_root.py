"""`firewall` runs a root that loads a command's modules only when the command line names it
(firewall/cli/lazy_root.py): it must read and behave as the app with every command registered."""

from __future__ import annotations

import inspect

import pytest
import typer
from typer.testing import CliRunner

from firewall.cli import main
from firewall.cli.main import COMMANDS, app

EAGER = typer.main.get_command(app)


def _output(application: typer.Typer, args: list[str], columns: int = 80) -> tuple[int, str]:
    result = CliRunner().invoke(application, args, env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    return result.exit_code, result.output


def _first_paragraph(text: str) -> str:
    return " ".join(inspect.cleandoc(text).split("\n\n")[0].split())


def test_the_table_names_every_command_in_the_order_help_lists_them():
    assert list(COMMANDS) == list(EAGER.commands)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_help_line_is_the_commands_own(name: str):
    """What the root lists without loading a command is the first paragraph of its own help:
    a docstring changed without the table fails here, naming the command."""
    real = EAGER.commands[name]
    assert _first_paragraph(COMMANDS[name].help) == _first_paragraph(real.short_help or real.help or "")


@pytest.mark.parametrize("columns", [80, 200])
@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        [],  # no arguments: the root's help, exit 2 (no_args_is_help)
        ["polcy"],  # a misspelled command: the same error
        ["policy", "--help"],
        ["run", "--help"],
        ["audit", "verify", "--help"],
        ["approvals", "--help"],
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else str(value),
)
def test_the_lazy_root_reads_as_the_whole_app(args: list[str], columns: int):
    assert _output(main._lazy_app(), args, columns) == _output(app, args, columns)


def test_a_command_is_loaded_only_when_named():
    lazy = typer.main.get_command(main._lazy_app())
    ctx = typer._click.Context(lazy, info_name="firewall")
    lazy.get_help(ctx)  # lists every command, with its help line
    assert lazy.standing_in == set(COMMANDS)
    name, command, _ = lazy.resolve_command(ctx, ["proxy", "status"])
    assert name == "proxy" and set(command.commands) == set(EAGER.commands["proxy"].commands)
    assert lazy.standing_in == set(COMMANDS) - {"proxy"}  # control: the one named, and only it
