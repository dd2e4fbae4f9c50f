"""The error corpus: `firewall policy check` on each case prints exactly its `.expected` stderr.

A case is `errors/NAME.policy`, or a folder `errors/NAME/` of policy files
compiled as one policy, beside `errors/NAME.expected`. Cases named
`warning-*` compile (exit 0, warnings on stderr); every other case does not
(exit 2). Every case runs in-process through the Typer app; a few also run
as a real `python -m firewall` process, to prove the installed entry point
prints the same thing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from firewall.cli.main import app

ERRORS = Path(__file__).parent / "errors"
CASES = sorted(path.name.removesuffix(".expected") for path in ERRORS.glob("*.expected"))
SUBPROCESS_CASES = ["spec-unknown-field", "warning-shadowed-rule"]  # exit 2 and exit 0


def _target(name: str) -> str:
    """The argument to `policy check`, relative to ERRORS so messages name short paths."""
    return f"{name}/" if (ERRORS / name).is_dir() else f"{name}.policy"


def _expected_exit(name: str) -> int:
    return 0 if name.startswith("warning-") else 2


def test_every_case_has_a_policy_and_every_policy_a_case():
    inputs = {path.name.removesuffix(".policy") for path in ERRORS.iterdir() if path.suffix != ".expected"}
    assert inputs == set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_check_prints_the_expected_diagnostics(name, monkeypatch):
    monkeypatch.chdir(ERRORS)
    result = CliRunner().invoke(app, ["policy", "check", _target(name)])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr == (ERRORS / f"{name}.expected").read_text(encoding="utf-8")
    assert result.exit_code == _expected_exit(name)


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_the_real_command_prints_the_same(name):
    process = subprocess.run(
        [sys.executable, "-m", "firewall", "policy", "check", _target(name)],
        cwd=ERRORS,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.stderr == (ERRORS / f"{name}.expected").read_text(encoding="utf-8")
    assert process.returncode == _expected_exit(name)


def test_the_spec_example_puts_the_caret_under_the_misspelt_field():
    lines = (ERRORS / "spec-unknown-field.expected").read_text(encoding="utf-8").splitlines()
    location, source, caret = lines[:3]
    assert location == 'spec-unknown-field.policy:4:28: unknown field "jsn.model"; did you mean "json.model"?'
    assert source[caret.index("^") :].startswith("jsn.model")
