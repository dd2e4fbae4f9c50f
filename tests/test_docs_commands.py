"""Every command of the CLI is documented: its full name appears in README.md or docs/,
and its --help carries an example."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from firewall.cli.main import app

ROOT = Path(__file__).resolve().parents[1]


def _is_group(command) -> bool:
    return hasattr(command, "commands")


def _commands(group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    found = []
    for name, command in group.commands.items():
        if getattr(command, "hidden", False):
            continue
        path = (*prefix, name)
        found.append((path, command))
        if _is_group(command):
            found.extend(_commands(command, path))
    return found


COMMANDS = _commands(typer.main.get_command(app))
DOCS = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_every_command_is_in_the_docs(path):
    assert f"firewall {' '.join(path)}" in DOCS


@pytest.mark.parametrize(
    ("path", "command"),
    [(p, c) for p, c in COMMANDS if not _is_group(c)],
    ids=[" ".join(p) for p, c in COMMANDS if not _is_group(c)],
)
def test_every_command_help_has_an_example(path, command):
    assert "Example: firewall " + path[0] in (command.help or ""), f"firewall {' '.join(path)} --help has no example"
