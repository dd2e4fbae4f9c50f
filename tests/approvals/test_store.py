"""The approvals store against a real SQLite database: first answer wins, grants fit one
agent and one rule, an approval is used once, nothing stays pending forever."""

from __future__ import annotations

import threading

import pytest

from firewall.approvals import grants, records, store
from firewall.state.db import open_database
from tests.approvals.support import NOW, held

ME = 4242


def test_the_first_answer_wins_and_the_second_is_told_who_decided(db, db_path):
    row = store.record_pending(db, held(), NOW, ME)
    other = open_database(db_path)  # another terminal
    try:
        answer = store.answer(other, row.id, approve=False, by="alice", now=NOW + 5)
        assert (answer.approval.state, answer.approval.decided_by, answer.approval.decided_at) == (
            "denied",
            "alice",
            NOW + 5,
        )
        with pytest.raises(records.AlreadyDecided, match=rf"{row.id} was already decided: denied by alice at "):
            store.answer(db, row.id, approve=True, by="bob", now=NOW + 6)
    finally:
        other.close()
    assert store.get(db, row.id).state == "denied"


def test_two_answers_at_once_exactly_one_wins(db_path):
    db = open_database(db_path)
    row = store.record_pending(db, held(), NOW, ME)
    db.close()
    results, barrier = [], threading.Barrier(2)

    def answer(user: str, approve: bool) -> None:
        connection = open_database(db_path)
        barrier.wait()
        try:
            results.append(
                (user, store.answer(connection, row.id, approve=approve, by=user, now=NOW + 1).approval.state)
            )
        except records.AlreadyDecided:
            results.append((user, "refused"))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=answer, args=("alice", True)),
        threading.Thread(target=answer, args=("bob", False)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(state for _, state in results) in (["approved", "refused"], ["denied", "refused"])


def test_an_unknown_id_and_an_answer_after_the_expiry(db):
    with pytest.raises(records.UnknownApproval, match="no approval request 'apr_nope'; `firewall approvals list`"):
        store.answer(db, "apr_nope", approve=True, by="alice", now=NOW)
    row = store.record_pending(db, held(timeout=2), NOW, ME)
    with pytest.raises(records.AlreadyDecided, match=r"expired at .*no answer within the approval timeout"):
        store.answer(db, row.id, approve=True, by="alice", now=NOW + 2)
    assert store.get(db, row.id).state == "expired"


def test_a_grant_fits_only_its_agent_its_rule_location_and_text_until_it_expires(db):
    row = store.record_pending(db, held(), NOW, ME)
    answer = store.answer(db, row.id, approve=True, by="alice", now=NOW, grant_for=600)
    grant = answer.grant
    assert (grant.agent, grant.rule, grant.expires, grant.created_by, grant.approval_id) == (
        "ci",
        "test.policy:4",
        NOW + 600,
        "alice",
        row.id,
    )
    assert answer.approval.grant_id == grant.id
    h = held()
    assert grants.matching_grant(db, "ci", h.rule, h.rule_text, NOW + 599).id == grant.id
    assert grants.matching_grant(db, "other-agent", h.rule, h.rule_text, NOW + 1) is None
    assert grants.matching_grant(db, "ci", "test.policy:5", h.rule_text, NOW + 1) is None
    assert grants.matching_grant(db, "ci", h.rule, "approve POST /v1/**", NOW + 1) is None  # the rule was edited
    assert grants.matching_grant(db, "ci", h.rule, h.rule_text, NOW + 600) is None
    assert [g.id for g in grants.live_grants(db, NOW + 1)] == [grant.id]


def test_revoking_a_grant_ends_it_once(db):
    row = store.record_pending(db, held(), NOW, ME)
    grant = store.answer(db, row.id, approve=True, by="alice", now=NOW, grant_for=600).grant
    revoked = grants.revoke(db, grant.id, "bob", NOW + 10)
    assert (revoked.revoked, revoked.revoked_by) == (NOW + 10, "bob")
    assert grants.matching_grant(db, "ci", grant.rule, grant.rule_text, NOW + 11) is None
    with pytest.raises(records.AlreadyDecided, match=f"grant {grant.id} was already revoked by bob"):
        grants.revoke(db, grant.id, "carol", NOW + 12)
    with pytest.raises(records.UnknownApproval, match="no grant 'grt_nope'"):
        grants.revoke(db, "grt_nope", "carol", NOW)


def test_grant_for_needs_an_approval():
    with pytest.raises(ValueError, match="grant_for needs approve=True"):
        store.answer(None, "apr_x", approve=False, by="alice", now=NOW, grant_for=60)


def test_an_approval_is_used_once(db):
    row = store.record_pending(db, held(), NOW, ME)
    assert not store.claim(db, row.id, "req_1", NOW)  # not approved yet
    store.answer(db, row.id, approve=True, by="alice", now=NOW + 1)
    assert store.claim(db, row.id, "req_1", NOW + 1)
    assert not store.claim(db, row.id, "req_2", NOW + 2)
    assert store.get(db, row.id).used_by_request == "req_1"


def test_an_identical_retry_claims_an_unused_approval_once_within_its_window(db):
    row = store.record_pending(db, held(timeout=120), NOW, ME)
    store.release(db, row.id)  # the agent disconnected
    store.answer(db, row.id, approve=True, by="alice", now=NOW + 100)
    assert store.claim_retry(db, held(fingerprint="0" * 64, request_id="req_2"), NOW + 101) is None
    assert store.claim_retry(db, held(agent="other", request_id="req_2"), NOW + 101) is None
    assert store.claim_retry(db, held(request_id="req_2"), NOW + 220) is None  # answer + timeout passed
    claimed = store.claim_retry(db, held(request_id="req_2"), NOW + 219)
    assert (claimed.id, claimed.used_by_request) == (row.id, "req_2")
    assert store.claim_retry(db, held(request_id="req_3"), NOW + 219) is None


def test_a_denied_row_is_never_claimed_by_a_retry(db):
    row = store.record_pending(db, held(), NOW, ME)
    store.answer(db, row.id, approve=False, by="alice", now=NOW + 1)
    assert store.claim_retry(db, held(request_id="req_2"), NOW + 2) is None


def test_an_abandoned_pending_row_is_adopted_by_an_identical_retry_only(db):
    row = store.record_pending(db, held(), NOW, ME)
    assert store.adopt_abandoned(db, held(request_id="req_2"), NOW + 1, 7) is None  # still held
    store.release(db, row.id)
    assert store.adopt_abandoned(db, held(request_id="req_2", fingerprint="0" * 64), NOW + 1, 7) is None
    adopted = store.adopt_abandoned(db, held(request_id="req_2"), NOW + 1, 7)
    assert (adopted.id, adopted.held, adopted.proxy_pid) == (row.id, 1, 7)


def test_stale_rows_expire_past_their_expiry_or_when_their_proxy_is_gone(db):
    due = store.record_pending(db, held(timeout=10), NOW, ME)
    orphan = store.record_pending(db, held(timeout=100), NOW, 999_999)
    live = store.record_pending(db, held(timeout=100), NOW, ME)
    count = store.expire_stale(db, NOW + 10, alive=lambda pid: pid == ME)
    assert count == 2
    rows = store.get_many(db, [due.id, orphan.id, live.id])
    assert rows[due.id].state == rows[orphan.id].state == "expired"
    assert rows[orphan.id].detail == "the proxy that held it (pid 999999) is gone"
    assert rows[live.id].state == "pending"
    assert [r.id for r in store.pending(db)] == [live.id]


def test_a_stopping_proxy_cancels_only_its_own_pending_rows(db):
    mine = store.record_pending(db, held(), NOW, ME)
    theirs = store.record_pending(db, held(), NOW, ME + 1)
    decided = store.record_pending(db, held(), NOW, ME)
    store.answer(db, decided.id, approve=True, by="alice", now=NOW)
    assert store.cancel(db, ME, NOW + 1, "the proxy stopped") == 1
    rows = store.get_many(db, [mine.id, theirs.id, decided.id])
    assert [rows[i].state for i in (mine.id, theirs.id, decided.id)] == ["cancelled", "pending", "approved"]


def test_expire_loses_to_an_answer_that_came_first(db):
    row = store.record_pending(db, held(), NOW, ME)
    store.answer(db, row.id, approve=True, by="alice", now=NOW + 1)
    assert not store.expire(db, row.id, NOW + 200)
    assert store.get(db, row.id).state == "approved"
