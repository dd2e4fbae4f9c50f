"""`policy test -v/--run`, `policy fmt --diff` and `policy show --version/--diff`: what a person reads
at a terminal, and the plain text a pipe gets."""

from __future__ import annotations

import json

import pytest

POLICY = """\
host api.example.com {
    allow GET /v1/models
    allow POST /v1/files
}

test "models" {
    expect allow GET https://api.example.com/v1/models
    expect block POST https://api.example.com/v1/files
}

test "strangers" {
    expect block GET https://evil.example.com/
}
"""
GREEN, RED = "\x1b[32m", "\x1b[31m"
PLAIN = {"FORCE_COLOR": "", "NO_COLOR": "", "TERM": "xterm"}


def test_default_output_is_unchanged_and_plain_when_piped(firewall):
    result = firewall.run("policy", "test", str(firewall.write_policy("p.policy", POLICY)), env=PLAIN)
    assert result.returncode == 1
    assert result.stdout == (
        "PASS  p.policy:7  expect allow GET https://api.example.com/v1/models\n"
        "FAIL  p.policy:8  expect block POST https://api.example.com/v1/files\n"
        "      expected block, got allow (rule, p.policy:3)\n"
        "PASS  p.policy:12  expect block GET https://evil.example.com/\n"
        "2 expectation(s) hold, 1 do not\n"
    )


def test_verbose_names_each_test_with_its_location_and_verdict(firewall):
    result = firewall.run("policy", "test", "-v", str(firewall.write_policy("p.policy", POLICY)), env=PLAIN)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == 'test "models"  (p.policy:6)  FAIL'
    assert lines[1] == "  PASS  p.policy:7  expect allow GET https://api.example.com/v1/models"
    assert lines[2] == "  FAIL  p.policy:8  expect block POST https://api.example.com/v1/files"
    assert 'test "strangers"  (p.policy:11)  PASS' in lines
    assert "\x1b" not in result.stdout


@pytest.mark.parametrize(
    ("pattern", "runs", "code"),
    [
        ("strangers", ["p.policy:12"], 0),  # a test name: its expects, the failing test not run
        ("mod", ["p.policy:7", "p.policy:8"], 1),  # part of a name, as opa test --run
        ("v1/models", ["p.policy:7"], 0),  # the text of one expect line
        ("strangers|models", ["p.policy:7", "p.policy:8", "p.policy:12"], 1),  # a regular expression
    ],
)
def test_run_runs_only_the_tests_that_match(firewall, pattern, runs, code):
    result = firewall.run("policy", "test", "--run", pattern, str(firewall.write_policy("p.policy", POLICY)))
    assert result.returncode == code, result.stderr
    ran = [line.split()[1] for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert ran == runs
    skipped = 3 - len(runs)
    assert result.stdout.endswith(f"do not ({skipped} not run: --run {pattern})\n" if skipped else "do not\n")


@pytest.mark.parametrize("pattern", ["nothing-like-it", "("])
def test_run_that_selects_nothing_or_is_not_a_pattern_is_an_error(firewall, pattern):
    result = firewall.run("policy", "test", "--run", pattern, str(firewall.write_policy("p.policy", POLICY)))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: --run {pattern!r}")
    assert "Traceback" not in result.stderr
    assert "PASS" not in result.stdout


def test_pass_and_fail_are_coloured_on_a_terminal_and_not_with_no_color(firewall):
    path = str(firewall.write_policy("p.policy", POLICY))
    coloured = firewall.run("policy", "test", "-v", path, env={"FORCE_COLOR": "1", "NO_COLOR": ""}).stdout
    assert f"{GREEN}PASS" in coloured and f"{RED}FAIL" in coloured
    plain = firewall.run("policy", "test", "-v", path, env={"FORCE_COLOR": "1", "NO_COLOR": "1"}).stdout
    assert "\x1b[" not in plain
    assert plain == firewall.run("policy", "test", "-v", path, env=PLAIN).stdout


UNFORMATTED = "host   api.example.com {\n  allow GET /v1/models\n}\n"


@pytest.mark.parametrize("flags", [["--check", "--diff"], ["--diff"]])
def test_fmt_diff_prints_a_unified_diff_and_changes_nothing(firewall, flags):
    path = firewall.write_policy("u.policy", UNFORMATTED)
    result = firewall.run("policy", "fmt", *flags, str(path), env=PLAIN)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"--- {path} (now)",
        f"+++ {path} (formatted)",
        "@@ -1,3 +1,3 @@",
        "-host   api.example.com {",
        "-  allow GET /v1/models",
        "+host api.example.com {",
        "+    allow GET /v1/models",
        " }",
    ]
    assert f"would reformat {path}" in result.stderr
    assert path.read_text() == UNFORMATTED


def test_fmt_diff_of_a_formatted_file_prints_no_diff_and_exits_0(firewall):
    """The control: nothing to change, no diff, exit 0."""
    path = firewall.write_policy("f.policy", "host api.example.com {\n    allow GET /v1/models\n}\n")
    result = firewall.run("policy", "fmt", "--check", "--diff", str(path), env=PLAIN)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1 file(s) already formatted\n"


def test_fmt_check_without_diff_is_unchanged(firewall):
    path = firewall.write_policy("u.policy", UNFORMATTED)
    result = firewall.run("policy", "fmt", "--check", str(path), env=PLAIN)
    assert (result.returncode, result.stdout) == (1, f"would reformat {path}\n")


def _two_versions(fw):
    fw.run(
        "policy",
        "apply",
        str(fw.write_policy("p.policy", "host api.example.com {\n    allow GET /v1/models\n}\n")),
        check=True,
    )
    fw.run(
        "policy",
        "apply",
        str(fw.write_policy("p.policy", "host api.example.com {\n    allow GET /v2/models\n}\n")),
        check=True,
    )


def test_show_version_shows_an_old_versions_sources(firewall):
    _two_versions(firewall)
    old = firewall.run("policy", "show", "--version", "1", check=True).stdout
    assert old.startswith("version 1  ")
    assert "allow GET /v1/models" in old and "/v2/" not in old
    assert "allow GET /v2/models" in firewall.run("policy", "show", check=True).stdout  # the control
    as_json = json.loads(firewall.run("policy", "show", "--version", "1", "--json", check=True).stdout)
    assert as_json["version"] == 1 and "/v1/models" in as_json["sources"][0]["text"]


def test_show_diff_against_the_version_in_force_and_between_two(firewall):
    _two_versions(firewall)
    result = firewall.run("policy", "show", "--diff", "1", env=PLAIN, check=True)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("from version 1 ") and lines[1].startswith("  to version 2 ")
    assert "    - allow GET /v1/models" in lines and "    + allow GET /v2/models" in lines
    assert "-    allow GET /v1/models" in lines and "+    allow GET /v2/models" in lines
    back = firewall.run("policy", "show", "--diff", "2", "1", env=PLAIN, check=True).stdout.splitlines()
    assert "-    allow GET /v2/models" in back and "+    allow GET /v1/models" in back
    same = firewall.run("policy", "show", "--diff", "2", env=PLAIN, check=True).stdout
    assert "no change in hosts, rules or credentials" in same and "@@" not in same
    as_json = json.loads(firewall.run("policy", "show", "--diff", "1", "--json", check=True).stdout)
    assert (as_json["from"]["version"], as_json["to"]["version"]) == (1, 2)
    assert "+    allow GET /v2/models" in as_json["diff"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "9"], "error: no policy version 9; see `firewall policy history`"),
        (["--diff", "9"], "error: no policy version 9"),
        (["--diff", "1", "9"], "error: no policy version 9"),
        (["2"], "error: version 2 given without --diff"),
        (["--version", "1", "--diff", "2"], "error: --version and --diff do not go together"),
    ],
)
def test_show_of_a_version_that_is_not_there_says_so(firewall, args, message):
    _two_versions(firewall)
    result = firewall.run("policy", "show", *args)
    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr


LONG_HOST = "inference-gateway.eu-west-1.internal-ml-platform.example.com"
LONG_PATH = "/v1/projects/quarterly-forecasting/fine_tuning/jobs/ftjob-2026-12-07-nightly-run"
LONG_POLICY = f"""\
host {LONG_HOST} {{
    allow GET /v1/projects/*/fine_tuning/jobs/*
}}

test "the nightly fine-tuning jobs of the quarterly forecasting project" {{
    expect allow GET https://{LONG_HOST}{LONG_PATH}
    expect allow POST https://{LONG_HOST}{LONG_PATH}
}}
"""


def _long_policy(tmp_path):
    folder = tmp_path / "teams" / "machine-learning-platform" / "egress-policies" / "production"
    folder.mkdir(parents=True)
    path = folder / "inference-gateway.policy"
    path.write_text(LONG_POLICY)
    return path


def test_at_80_columns_long_urls_and_paths_are_shortened_and_the_verdict_kept(firewall, tmp_path):
    path = _long_policy(tmp_path)
    piped = firewall.run("policy", "test", "-v", str(path), env=PLAIN)
    assert max(len(line) for line in piped.stdout.splitlines()) > 80  # the control: these lines need fitting
    result = firewall.run("policy", "test", "-v", str(path), env={**PLAIN, "COLUMNS": "80"})
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    header, passed, failed = lines[0], lines[1], lines[2]
    assert header.startswith('test "the nightly') and header.endswith("inference-gateway.policy:5)  FAIL")
    assert passed.startswith("  PASS  inference-gateway.policy:6  expect allow GET https://")
    assert failed.startswith("  FAIL  inference-gateway.policy:7  expect allow POST https://")
    url = passed.split()[-1]
    assert "…" in url and url.startswith(f"https://{LONG_HOST[:7]}") and url.endswith(LONG_PATH[-8:])
    assert lines[-1] == "1 expectation(s) hold, 1 do not"  # the summary, as piped


def test_at_80_columns_short_lines_are_unchanged(firewall):
    path = str(firewall.write_policy("p.policy", POLICY))
    piped = firewall.run("policy", "test", "-v", path, env=PLAIN).stdout
    assert firewall.run("policy", "test", "-v", path, env={**PLAIN, "COLUMNS": "80"}).stdout == piped
    assert "…" not in piped
