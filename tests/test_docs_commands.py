"""Every command of the CLI is documented: its full name appears in README.md or docs/,
and its --help carries an example."""

from __future__ import annotations

import re
import shlex
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


WORKFLOW = ROOT / "docs" / "workflow.md"
_BLOCK = re.compile(r"^```(policy (\S+)|console)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_EXITS = re.compile(r"\s+# exits (\d+)$")


def test_every_command_of_the_workflow_page_runs(firewall, tmp_path):
    """docs/workflow.md, in order: `policy NAME` blocks are written to NAME, each `$ firewall …` line
    of a `console` block is run there and exits as the page says (0 unless `# exits N`)."""
    ran = 0
    for match in _BLOCK.finditer(WORKFLOW.read_text(encoding="utf-8")):
        if match.group(2):
            (tmp_path / match.group(2)).write_text(match.group(3), encoding="utf-8")
            continue
        for line in match.group(3).splitlines():
            assert line.startswith("$ firewall "), f"a console line that is not a firewall command: {line!r}"
            exits = _EXITS.search(line)
            command = shlex.split(line[len("$ firewall ") : exits.start() if exits else None])
            result = firewall.run(*command, cwd=tmp_path)
            expected = int(exits.group(1)) if exits else 0
            assert result.returncode == expected, f"{line}\n{result.stdout}\n{result.stderr}"
            ran += 1
    assert ran >= 10
