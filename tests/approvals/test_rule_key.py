"""The prompt's `s` key adding the rule to the policy (firewall/approvals/rule_change.py, the
prompt's confirmation, cli/applying.py): diff shown, y applies a new version and allows the request;
controls: n changes nothing (the request still waits), a rule that breaks a test is not added (the
request is allowed once), files that are not the policy in force get the review file instead.
The real terminal and a real proxy: tests/e2e/test_approvals.py."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from firewall.approvals import store
from firewall.approvals.prompt import Prompt
from firewall.approvals.rule_change import NotInFiles, plan
from firewall.cli.approvals_cmd import _adopted_lines
from firewall.policy import Request, Verdict, decide
from firewall.policy.loader import load_policy
from firewall.state import policy_store
from firewall.state.home import Home
from tests.approvals.support import NOW, held

ME = os.getpid()
POLICY = """\
host api.example.com {
    allow GET /v1/models
    approve POST /v1/fine_tuning/** when agent != "root" reason "billed"
}

test "held" {
    expect approve POST https://api.example.com/v1/fine_tuning/jobs
}
"""
RULE = 'allow POST /v1/fine_tuning/jobs when agent == "ci" and agent != "root"'


class Keys:
    def __init__(self, *keys: str):
        self.keys = list(keys)

    def read(self, timeout: float) -> str | None:
        return self.keys.pop(0) if self.keys else "q"

    def discard(self) -> None:
        pass


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policies" / "test.policy"
    path.parent.mkdir()
    path.write_text(POLICY)
    return path


def _apply(db, path: Path) -> None:
    result = load_policy([path])
    policy_store.store_version(
        db, result.policy, [(str(path), path.read_text())], origins=[str(path.absolute())], tests="1 passed"
    )


def _prompt(db_path: Path, home: Path, *keys: str, out: io.StringIO | None = None) -> list[str]:
    prompt = Prompt(
        db_path,
        grant_for=300,
        user="me",
        out=out or io.StringIO(),
        keys=Keys(*keys),
        clock=lambda: NOW,
        via="prompt on pts/9",
        adopt=lambda db, change: _adopted_lines(db, Home(home), change),
    )
    prompt.run()
    return list(prompt.notices)


def _decides(db, agent: str) -> Verdict:
    policy = policy_store.policy_in_force(db)
    request = Request("POST", "https", "api.example.com", 443, "/v1/fine_tuning/jobs", agent=agent)
    return decide(policy, request, 0.0).verdict


def test_s_then_y_allows_and_applies_the_rule_as_a_new_version(db_path, db, tmp_path, policy_file):
    _apply(db, policy_file)
    row = store.record_pending(db, held(rule="test.policy:3"), NOW, ME)
    screen = io.StringIO()
    notices = _prompt(db_path, tmp_path / "home", "s", "y", out=screen)
    assert store.get(db, row.id).state == "approved"
    assert store.get(db, row.id).decided_via == "prompt on pts/9"
    # The diff was on the screen before the answer.
    shown = screen.getvalue()
    assert f"Add a rule to the policy for request {row.id}?" in shown
    assert f"+    {RULE}" in shown and "--- a/test.policy" in shown and "[y] yes, allow and apply" in shown
    # In the file, just before the approve rule, indented as its neighbours.
    text = policy_file.read_text()
    assert text.splitlines()[2:5] == [
        f"    # from approval {row.id} (agent ci)",
        f"    {RULE}",
        '    approve POST /v1/fine_tuning/** when agent != "root" reason "billed"',
    ]
    version = policy_store.active_version(db)
    assert version.version == 2 and version.sources == ((str(policy_file), text),)
    assert version.note == (
        f"rule from approval {row.id} (POST https://api.example.com/v1/fine_tuning/jobs, agent ci), "
        "by me via prompt on pts/9"
    )
    assert version.tests == "1 passed" and version.origins == (str(policy_file.absolute()),)
    # The same files applied again are the version in force: same names, same content.
    assert load_policy([policy_file]).policy.sha256 == version.sha256
    assert _decides(db, "ci") is Verdict.ALLOW and _decides(db, "other") is Verdict.APPROVE
    assert any("applied: version 2 is now in force" in n for n in notices), notices
    assert any(f"rule added to test.policy: {RULE}" in n for n in notices), notices


def test_s_then_n_changes_nothing_and_the_request_still_waits(db_path, db, tmp_path, policy_file):
    _apply(db, policy_file)
    row = store.record_pending(db, held(rule="test.policy:3"), NOW, ME)
    notices = _prompt(db_path, tmp_path / "home", "s", "n")
    assert store.get(db, row.id).state == "pending"
    assert policy_file.read_text() == POLICY and policy_store.active_version(db).version == 1
    assert any(f"the rule was not added; {row.id} is still waiting" in n for n in notices), notices
    assert not list(policy_file.parent.iterdir())[1:]  # no review file either
    # Any other key than y leaves the question open; Enter is no.
    notices = _prompt(db_path, tmp_path / "home", "s", "x", "\r")
    assert store.get(db, row.id).state == "pending" and policy_store.active_version(db).version == 1
    # Then `a` still answers it.
    _prompt(db_path, tmp_path / "home", "a")
    assert store.get(db, row.id).state == "approved"


def test_a_rule_that_breaks_a_test_is_not_added_and_the_request_is_allowed_once(db_path, db, tmp_path, policy_file):
    breaks = POLICY.replace("jobs\n}", 'jobs as agent "ci"\n}')
    policy_file.write_text(breaks)
    _apply(db, policy_file)
    row = store.record_pending(db, held(rule="test.policy:3"), NOW, ME)
    notices = _prompt(db_path, tmp_path / "home", "s", "y")
    assert store.get(db, row.id).state == "approved"
    assert policy_file.read_text() == breaks and policy_store.active_version(db).version == 1
    failed = [n for n in notices if "the rule was not added" in n]
    assert failed and "1 of 1 expectation(s)" in failed[0], notices
    assert "test.policy:7" in failed[0] and "expected approve, got allow" in failed[0], notices


def test_files_that_are_not_the_policy_in_force_get_the_review_file(db_path, db, tmp_path, policy_file):
    _apply(db, policy_file)
    policy_file.write_text(POLICY + "\n# edited since\n")
    row = store.record_pending(db, held(rule="test.policy:3"), NOW, ME)
    notices = _prompt(db_path, tmp_path / "home", "s")
    assert store.get(db, row.id).state == "approved" and policy_store.active_version(db).version == 1
    assert policy_file.read_text() == POLICY + "\n# edited since\n"
    assert any("has changed since it was applied" in n and "written for review instead" in n for n in notices)
    review = Path.cwd() / "suggested.policy"  # beside the policy only when that file is the one in force
    try:
        assert RULE in review.read_text()
    finally:
        review.unlink(missing_ok=True)


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda path: path.unlink(), "no longer exists"),
        (lambda path: path.write_text(POLICY.replace("allow GET", "allow HEAD")), "has changed since it was applied"),
    ],
)
def test_plan_says_why_the_files_cannot_take_the_rule(db, policy_file, damage, said):
    _apply(db, policy_file)
    row = store.record_pending(db, held(rule="test.policy:3"), NOW, ME)
    assert plan(db, row, "me").edits  # the control: the files as applied take it
    damage(policy_file)
    with pytest.raises(NotInFiles, match=said):
        plan(db, row, "me")


def test_a_version_stored_without_origins_is_found_from_the_folder_it_names(db, tmp_path, policy_file, monkeypatch):
    """Versions stored before origins were kept: the path as given to apply, read from the current folder."""
    monkeypatch.chdir(policy_file.parent.parent)
    result = load_policy([Path("policies/test.policy")])
    policy_store.store_version(db, result.policy, [("policies/test.policy", POLICY)])
    row = store.record_pending(db, held(rule="test.policy:3"), NOW, ME)
    change = plan(db, row, "me")
    assert [edit.file for edit in change.edits] == [policy_file.absolute()]
    monkeypatch.chdir(policy_file.parent)  # elsewhere: the file is not where it was applied from
    with pytest.raises(NotInFiles, match="no longer exists"):
        plan(db, row, "me")
