"""docs/policy-language.md stays true: every `policy` block in it compiles with
no warning and its tests hold, and the page names every reason and every
command that works on policy text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from firewall.cli.policy_cmd import app as policy_app
from firewall.policy import Reason, compile_source
from firewall.policy.testing import run_tests

REPO = Path(__file__).parents[2]
PAGE = REPO / "docs" / "policy-language.md"
TEXT = PAGE.read_text(encoding="utf-8")
FENCE = re.compile(r"^```policy\n(.*?)^```$", re.DOTALL | re.MULTILINE)
EXAMPLES = [(TEXT.count("\n", 0, match.start()) + 2, match.group(1)) for match in FENCE.finditer(TEXT)]


def test_the_page_has_examples():
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize(("line", "source"), EXAMPLES, ids=[f"line {line}" for line, _ in EXAMPLES])
def test_every_example_compiles_and_its_tests_hold(line, source):
    result = compile_source(source, f"{PAGE.name}:{line}")
    assert [warning.render() for warning in result.warnings] == []
    assert result.tests, "an example without a test block proves nothing"
    failures = [f"{r.case.source.text}: {r.describe()}" for r in run_tests(result.policy, result.tests) if not r.passed]
    assert failures == []


def test_the_complete_example_is_the_specs_verbatim():
    _, first = EXAMPLES[0]
    assert first == (Path(__file__).parent / "corpus" / "spec-example.policy").read_text(encoding="utf-8")


@pytest.mark.parametrize("reason", [reason.value for reason in Reason])
def test_every_reason_is_documented(reason):
    assert f"`{reason}`" in TEXT


@pytest.mark.parametrize("command", ["check", "test", "explain", "fmt"])
def test_every_language_command_exists_and_is_documented(command):
    assert command in typer.main.get_command(policy_app).commands
    assert f"firewall policy {command}" in TEXT
