"""Grants by stable rule name: a named rule's grant survives edits; a grant whose rule is gone ends."""

from __future__ import annotations

from firewall.approvals import grants, store
from tests.approvals.support import NOW, held

ME = 4242


def grant_of(db, **changes):
    row = store.record_pending(db, held(**changes), NOW, ME)
    return store.answer(db, row.id, approve=True, by="alice", now=NOW, grant_for=600).grant


def test_a_named_rule_grant_matches_an_edited_rule_of_that_name(db):
    grant = grant_of(db, rule="fine-tuning", rule_text='approve POST /v1/fine_tuning/** as "fine-tuning"')
    edited = 'approve POST /v1/fine_tuning/jobs as "fine-tuning"'
    assert grants.matching_grant(db, "ci", "fine-tuning", edited, NOW + 1, named=True).id == grant.id
    # controls: another name, another agent, and an unnamed rule with that edited text
    assert grants.matching_grant(db, "ci", "other-name", edited, NOW + 1, named=True) is None
    assert grants.matching_grant(db, "bot", "fine-tuning", edited, NOW + 1, named=True) is None
    assert grants.matching_grant(db, "ci", "fine-tuning", edited, NOW + 1, named=False) is None


def test_grants_whose_rule_is_gone_are_ended_and_the_others_kept(db):
    kept = grant_of(db)  # test.policy:4, its text unchanged below
    named = grant_of(db, rule="chat", rule_text='approve POST /v1/chat as "chat"')
    moved = grant_of(db, rule="test.policy:9", rule_text="approve DELETE /v1/files/**")
    renamed = grant_of(db, rule="old-name", rule_text='approve GET /x as "old-name"')
    rules = [
        ("test.policy:4", held().rule_text, False),
        ("chat", 'approve POST /v1/chat/** as "chat"', True),  # edited, still named "chat"
        ("test.policy:11", "approve DELETE /v1/files/**", False),  # moved two lines down
    ]
    ended = grants.end_orphans(db, rules, NOW + 1)
    assert sorted(g.id for g in ended) == sorted([moved.id, renamed.id])
    assert sorted(g.id for g in grants.live_grants(db, NOW + 2)) == sorted([kept.id, named.id])
    assert grants.get_grant(db, moved.id).revoked_by == grants.ORPHAN_BY
    assert grants.end_orphans(db, rules, NOW + 2) == []  # once
