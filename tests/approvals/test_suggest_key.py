"""The prompt's `s` key (firewall/approvals/suggest_rule.py): it allows the request once and writes
the rule that would let it through to a file, for review; `a`, the control, writes nothing. The real
terminal is driven in tests/e2e/test_approvals.py."""

from __future__ import annotations

import io
import os
from pathlib import Path

from firewall.approvals import store
from firewall.approvals.prompt import Prompt
from firewall.approvals.suggest_rule import default_file
from firewall.policy.loader import compile_source
from firewall.state import policy_store
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


class Keys:
    def __init__(self, *keys: str):
        self.keys = list(keys)

    def read(self, timeout: float) -> str | None:
        return self.keys.pop(0) if self.keys else "q"

    def discard(self) -> None:
        pass


def _prompt(db_path: Path, out: Path, *keys: str) -> list[str]:
    prompt = Prompt(db_path, grant_for=300, user="me", out=io.StringIO(), keys=Keys(*keys), clock=lambda: NOW)
    prompt.suggest_to = out
    prompt.run()
    return list(prompt.notices)


def _apply(db, text: str = POLICY) -> None:
    policy_store.store_version(db, compile_source(text, "test.policy").policy, [("/nowhere/test.policy", text)])


def test_s_allows_once_and_writes_the_rule_and_a_writes_nothing(db_path, db, tmp_path):
    _apply(db)
    out = tmp_path / "suggested.policy"
    control = store.record_pending(db, held(request_id="req_a", fingerprint="a" * 64, rule="test.policy:3"), NOW, ME)
    notices = _prompt(db_path, out, "a")
    assert store.get(db, control.id).state == "approved" and not out.exists()
    assert not any("suggested" in n for n in notices)

    row = store.record_pending(db, held(request_id="req_s", fingerprint="b" * 64, rule="test.policy:3"), NOW, ME)
    notices = _prompt(db_path, out, "s")
    assert store.get(db, row.id).state == "approved"
    rule = 'allow POST /v1/fine_tuning/jobs when agent == "ci" and agent != "root"'
    assert any(rule in n and "just before the rule at test.policy:3" in n for n in notices), notices
    assert any(f"written to {out}" in n and "1 hold, 0 do not" in n for n in notices), notices
    text = out.read_text()
    assert rule in text and "goes just before test.policy:3" in text
    assert compile_source(text, "suggested.policy").policy.blocks[0].patterns == ("api.example.com",)

    again = store.record_pending(db, held(request_id="req_t", fingerprint="c" * 64, rule="test.policy:3"), NOW, ME)
    _prompt(db_path, out, "s")
    assert store.get(db, again.id).state == "approved"
    assert out.read_text().count(rule) == 2  # appended, not overwritten


def test_s_still_allows_once_when_no_rule_can_be_proposed(db_path, db, tmp_path):
    _apply(db, POLICY.replace("approve POST", "allow POST").replace("expect approve", "expect allow"))
    out = tmp_path / "suggested.policy"
    row = store.record_pending(db, held(rule="test.policy:3"), NOW, ME)
    notices = _prompt(db_path, out, "s")
    assert store.get(db, row.id).state == "approved" and not out.exists()
    assert any("no rule suggested" in n and "already allowed" in n for n in notices), notices


def test_the_default_file_is_beside_the_policy_when_it_is_still_there(tmp_path):
    policy = tmp_path / "policies" / "test.policy"
    policy.parent.mkdir()
    policy.write_text(POLICY)
    assert default_file(((str(policy), POLICY),), tmp_path) == policy.parent / "suggested.policy"
    # Control: the file changed since it was applied: the current folder.
    assert default_file(((str(policy), POLICY + "\n"),), tmp_path / "cwd") == tmp_path / "cwd" / "suggested.policy"
