"""`policy fmt`: one layout, idempotent, comments and meaning kept; `--check` changes nothing."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from firewall.cli.main import app
from firewall.policy import CompiledPolicy, compile_source, decide
from firewall.policy.formatter import format_policy
from firewall.policy.parser import parse_policy
from tests.policy.corpus_cases import CASES, CORPUS, case_id, request_of

REPO = Path(__file__).parents[2]
POLICY_FILES = sorted([*CORPUS.glob("*.policy"), *(REPO / "policies").glob("*.policy")])


def fmt(source: str) -> str:
    return format_policy(parse_policy(source, "x.policy"))


def file_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@pytest.mark.parametrize("path", POLICY_FILES, ids=file_id)
def test_formatting_twice_changes_nothing_more(path):
    once = fmt(path.read_text(encoding="utf-8"))
    assert fmt(once) == once


@pytest.mark.parametrize("path", POLICY_FILES, ids=file_id)
def test_every_comment_is_kept_in_order(path):
    source = path.read_text(encoding="utf-8")
    before = [comment.text for comment in parse_policy(source, "x.policy").comments]
    after = [comment.text for comment in parse_policy(fmt(source), "x.policy").comments]
    assert after == before


@cache
def compiled(name: str, formatted: bool) -> CompiledPolicy:
    source = (CORPUS / name).read_text(encoding="utf-8")
    return compile_source(fmt(source) if formatted else source, name).policy


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_formatted_corpus_decides_the_same(case):
    """Every corpus request gets the same verdict, reason, rule text, credentials and limits."""

    def summary(policy: CompiledPolicy):
        decision = decide(policy, request_of(case), now=0.0)
        return (
            decision.verdict,
            decision.reason,
            decision.would,
            decision.rule.text if decision.rule else None,
            [i.credential for i in decision.inject],
            [(limit.amount, limit.agent) for limit in decision.limits],
        )

    assert summary(compiled(case["policy"], formatted=True)) == summary(compiled(case["policy"], formatted=False))


@pytest.mark.parametrize(
    ("source", "formatted"),
    [
        pytest.param(
            "default   block   # refuse the rest\n\n\n\nmode report\n",
            "default block  # refuse the rest\n\nmode report\n",
            id="single spaces, trailing comment two spaces off, one blank line at most",
        ),
        pytest.param(
            'credential openai{secret "openai"\nheader   Authorization="Bearer {secret}"}\n',
            'credential openai {\n    secret "openai"\n    header Authorization = "Bearer {secret}"\n}\n',
            id="one line per statement, four-space indent",
        ),
        pytest.param(
            "host a.com,*.a.com{\n  # why\n  allow GET,HEAD /v1/models,/v1/models/*   # models\n\n  # last\n}\n",
            "host a.com, *.a.com {\n    # why\n    allow GET, HEAD /v1/models, /v1/models/*  # models\n\n    # last\n}\n",
            id="lists with comma and space, comments inside a block indented with it",
        ),
        pytest.param(
            'host a.com {\n  block when (agent == "a" and agent == "b") or (agent == "c")\n}\n',
            'host a.com {\n    block when agent == "a" and agent == "b" or agent == "c"\n}\n',
            id="parentheses that change nothing go",
        ),
        pytest.param(
            'host a.com {\n  block when (agent == "a" or agent == "b") and not (json.n in [1,2] or json.m == true)\n}\n',
            'host a.com {\n    block when (agent == "a" or agent == "b") and not (json.n in [1, 2] or json.m == true)\n}\n',
            id="parentheses that bind stay",
        ),
        pytest.param(
            'test "t"{\nexpect allow GET https://a.com/ json {"a":[1,2]} as agent "x"\n'
            "  expect approve POST https://a.com/x\n}\n",
            'test "t" {\n    expect allow   GET  https://a.com/ as agent "x" json {"a": [1, 2]}\n'
            "    expect approve POST https://a.com/x\n}\n",
            id="expectations aligned, options in one order",
        ),
    ],
)
def test_layout(source, formatted):
    assert fmt(source) == formatted


UNFORMATTED = "host api.example.com{\n  allow GET   # reads\n}\n"
FORMATTED = "host api.example.com {\n    allow GET  # reads\n}\n"


def test_check_reports_an_unformatted_file_and_leaves_it_byte_identical(tmp_path):
    path = tmp_path / "a.policy"
    path.write_bytes(UNFORMATTED.encode())
    result = CliRunner().invoke(app, ["policy", "fmt", "--check", str(path)])
    assert (result.exit_code, result.stdout) == (1, f"would reformat {path}\n")
    assert path.read_bytes() == UNFORMATTED.encode()


def test_fmt_rewrites_an_unformatted_file(tmp_path):
    path = tmp_path / "a.policy"
    path.write_text(UNFORMATTED, encoding="utf-8")
    result = CliRunner().invoke(app, ["policy", "fmt", str(path)])
    assert (result.exit_code, result.stdout) == (0, f"reformatted {path}\n")
    assert path.read_text(encoding="utf-8") == FORMATTED
    assert CliRunner().invoke(app, ["policy", "fmt", "--check", str(path)]).exit_code == 0


@pytest.mark.parametrize("check", [False, True], ids=["fmt", "fmt --check"])
def test_a_file_with_a_syntax_error_is_left_untouched(tmp_path, check):
    path = tmp_path / "a.policy"
    broken = b"host api.example.com {\n  allow get /v1\n"
    path.write_bytes(broken)
    result = CliRunner().invoke(app, ["policy", "fmt", *(["--check"] if check else []), str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f'{path}:2:9: unexpected "get"\n')
    assert path.read_bytes() == broken
