"""The ready policies in policies/: each compiles alone with no warning, is in
`policy fmt`'s layout, its `test` blocks hold, the provider files compile together, and deny-all refuses
everything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from firewall.cli.main import app
from firewall.policy import Reason, Request, Verdict, decide, load_policy

POLICIES = Path(__file__).parents[2] / "policies"
READY = sorted(path.name for path in POLICIES.glob("*.policy"))
PROVIDERS = [name for name in READY if name != "deny-all.policy"]


def firewall(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("name", READY)
def test_compiles_alone_without_warnings(name):
    result = firewall("policy", "check", str(POLICIES / name))
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.startswith("ok: 1 file(s), ")


@pytest.mark.parametrize("name", READY)
def test_is_in_the_canonical_layout(name):
    result = firewall("policy", "fmt", "--check", str(POLICIES / name))
    assert result.exit_code == 0, result.stdout


@pytest.mark.parametrize("name", READY)
def test_its_tests_hold(name):
    result = firewall("policy", "test", str(POLICIES / name))
    lines = result.stdout.splitlines()
    assert result.exit_code == 0, result.stdout
    assert [line for line in lines if line.startswith("FAIL")] == []
    passed = [line for line in lines if line.startswith("PASS")]
    assert len(passed) >= 8
    assert lines[-1] == f"{len(passed)} expectation(s) hold, 0 do not"


def test_the_providers_compile_together():
    result = firewall("policy", "check", *(str(POLICIES / name) for name in PROVIDERS))
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.startswith(f"ok: {len(PROVIDERS)} file(s), ")


def test_the_folder_compiles_as_one_policy_with_one_default():
    result = firewall("policy", "test", str(POLICIES))
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines()[-1].endswith(" expectation(s) hold, 0 do not")


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "https://api.openai.com/v1/chat/completions"),
        ("GET", "https://api.anthropic.com/v1/models"),
        ("GET", "https://api.github.com/repos/octocat/hello-world"),
        ("GET", "https://raw.githubusercontent.com/octocat/hello-world/main/README.md"),
        ("CONNECT", "https://example.com:443/"),
        ("GET", "http://example.com:8080/"),
    ],
)
def test_deny_all_alone_refuses_even_the_providers(method, url):
    policy = load_policy([POLICIES / "deny-all.policy"]).policy
    decision = decide(policy, Request.from_url(method, url), now=0.0)
    assert (decision.verdict, decision.reason, decision.rule.line) == (Verdict.BLOCK, Reason.DEFAULT_NO_HOST, 8)
