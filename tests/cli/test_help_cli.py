"""Every command's --help, at 80 and 200 columns: metavars a person writes, docstrings wrapped once,
examples, no command that does not exist; and the root has --version and shell completion."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from firewall.cli.main import app

ROOT = typer.main.get_command(app)


def _is_group(command) -> bool:
    return hasattr(command, "commands")  # Typer 0.29 brings its own copy of click: no isinstance


def _commands(command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    found = [(path, command)]
    if _is_group(command):
        for name, sub in sorted(command.commands.items()):
            if not sub.hidden:
                found.extend(_commands(sub, (*path, name)))
    return found


COMMANDS = _commands(ROOT)
TYPE_NAMES = re.compile(r"<(bool|str|int|float|path|list\[[^\]]*\]|int range|float range)>|\{\w+\}")


def _help(path: tuple[str, ...], columns: int) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("columns", [80, 200])
@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "firewall" for p, _ in COMMANDS])
def test_help_shows_metavars_not_python_types(path, command, columns) -> None:
    text = _help(path, columns)
    assert not TYPE_NAMES.search(text), TYPE_NAMES.search(text).group()
    assert "audit follow" not in text and "subcommands follow" not in text  # there is no `audit follow`
    assert max(len(line) for line in text.splitlines()) <= columns


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "firewall" for p, _ in COMMANDS])
def test_docstring_paragraphs_are_wrapped_once(path, command) -> None:
    """At 200 columns each prose paragraph of a docstring fits on one line: no line ends where the
    source line ended (a second wrap inside the terminal's)."""
    text = " ".join(_help(path, 200).split())
    for paragraph in inspect.cleandoc(command.help or "").split("\n\n"):
        if paragraph.startswith("\b") or len(paragraph) > 190:
            continue
        assert " ".join(paragraph.split()) in text, paragraph


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "firewall" for p, _ in COMMANDS])
def test_every_command_has_an_example(path, command) -> None:
    if not path:
        return  # the root lists the commands
    if _is_group(command) and not getattr(command, "invoke_without_command", False):
        return  # a group without its own action: its commands have the examples
    assert "Example" in (command.help or ""), f"firewall {' '.join(path)} has no example"


def test_version_and_completion() -> None:
    done = subprocess.run([sys.executable, "-m", "firewall", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and re.fullmatch(r"agent-firewall \S+\n", done.stdout), done
    text = _help((), 200)
    assert "--install-completion" in text and "--show-completion" in text


def test_readme_says_where_state_goes_and_what_init_makes(tmp_path) -> None:
    from pathlib import Path

    from firewall.state.home import platform_root

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    using = readme.split("## Using it", 1)[1].split("\n## ", 1)[0]
    assert "FIREWALL_HOME" in using
    assert str(platform_root()).replace(str(Path.home()), "~") in using
    made = subprocess.run(
        [sys.executable, "-m", "firewall", "init"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "FIREWALL_HOME": str(tmp_path / "h")},
    )
    assert made.returncode == 0, made.stderr
    init_comment = next(line for line in using.splitlines() if line.startswith("firewall init")).split("#", 1)[1]
    for word in ("CA", "database"):  # made later, by the proxy and the first command that needs them
        assert word not in init_comment
        assert not (tmp_path / "h" / {"CA": "ca", "database": "firewall.db"}[word]).exists()
