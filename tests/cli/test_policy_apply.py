"""`policy apply` runs the policy's tests; `policy rollback` to the version in force changes nothing."""

from __future__ import annotations

import json

POLICY = """\
host api.example.com {{
    allow GET /v1/models
    {rule}
}}

test "models" {{
    expect allow GET https://api.example.com/v1/models
    expect block POST https://api.example.com/v1/files
}}
"""
PASSING = POLICY.format(rule="block POST /v1/files")
FAILING = POLICY.format(rule="allow POST /v1/files")


def history(fw) -> list[dict]:
    return json.loads(fw.run("policy", "history", "--json", check=True).stdout)


def test_apply_refuses_a_policy_whose_tests_fail_and_lists_the_failures(firewall):
    fw = firewall
    fw.run("policy", "apply", str(fw.write_policy("good.policy", PASSING)), check=True)
    before = history(fw)
    result = fw.run("policy", "apply", str(fw.write_policy("bad.policy", FAILING)))
    assert result.returncode == 1
    assert "bad.policy:8  expect block POST https://api.example.com/v1/files" in result.stderr
    assert "expected block, got allow" in result.stderr
    assert "1 of 2 expectation(s) do not hold; the policy was not applied" in result.stderr
    assert "--skip-tests" in result.stderr
    assert history(fw) == before  # nothing stored


def test_apply_of_a_passing_policy_records_its_tests(firewall):
    """The control: the same shape of policy with tests that hold is applied, and says so."""
    fw = firewall
    result = fw.run("policy", "apply", str(fw.write_policy("good.policy", PASSING)), check=True)
    assert "applied: version 1" in result.stdout
    assert history(fw)[-1]["tests"] == "2 passed"
    assert "tests: 2 passed" in fw.run("policy", "history", check=True).stdout


def test_skip_tests_applies_anyway_and_the_history_says_so(firewall):
    fw = firewall
    result = fw.run("policy", "apply", str(fw.write_policy("bad.policy", FAILING)), "--skip-tests", check=True)
    assert "applied: version 1" in result.stdout
    assert history(fw)[-1]["tests"] == "skipped (--skip-tests): 1 of 2 failing"
    assert "tests: skipped (--skip-tests): 1 of 2 failing" in fw.run("policy", "history", check=True).stdout


def test_rollback_to_the_version_in_force_changes_nothing(firewall):
    fw = firewall
    fw.run("policy", "apply", str(fw.write_policy("one.policy", PASSING)), check=True)
    fw.run("policy", "apply", str(fw.write_policy("two.policy", PASSING.replace("/v1/models", "/v2/models"))))
    fw.run("policy", "rollback", "1", check=True)  # version 3 holds version 1's content
    before = history(fw)
    for target in ("1", "3"):
        result = fw.run("policy", "rollback", target, check=True)
        assert result.stdout.startswith(f"unchanged: version {target} is already in force (as version 3"), result.stdout
        assert history(fw) == before
    # the control: rolling back to a version that is not in force does store a new version
    assert "rolled back: version 4" in fw.run("policy", "rollback", "2", check=True).stdout
    assert len(history(fw)) == len(before) + 1
