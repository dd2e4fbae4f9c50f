"""The proxy's approval broker on a real event loop and database: answers from another
connection reach a held request within half a second, and the loop never waits on the disk."""

from __future__ import annotations

import asyncio
import time

from firewall.approvals import store
from firewall.approvals.broker import ApprovalBroker, HoldEnd
from firewall.state.db import open_database
from tests.approvals.support import held


async def _pending_id(db_path, count: int = 1) -> list[str]:
    """The ids of the pending rows, once there are `count` (bounded wait)."""
    db = open_database(db_path)
    try:
        for _ in range(200):
            rows = store.pending(db)
            if len(rows) >= count:
                return [row.id for row in rows]
            await asyncio.sleep(0.01)
    finally:
        db.close()
    raise AssertionError(f"{count} pending row(s) never appeared")


def _answer(db_path, approval_id: str, approve: bool, **kwargs) -> None:
    db = open_database(db_path)
    try:
        store.answer(db, approval_id, approve=approve, by="alice", now=time.time(), **kwargs)
    finally:
        db.close()


def _run(db_path, scenario):
    async def main():
        broker = ApprovalBroker(db_path, poll_interval=0.05)
        await broker.start()
        try:
            return await asyncio.wait_for(scenario(broker), timeout=20)
        finally:
            await broker.close()

    return asyncio.run(main())


def test_an_approval_reaches_the_held_request_quickly_and_the_loop_keeps_running(db_path):
    async def scenario(broker):
        gaps = []

        async def ticker():
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        holding = asyncio.create_task(broker.hold(held(), gone=lambda: False))
        (approval_id,) = await _pending_id(db_path)
        answered = time.monotonic()
        await asyncio.to_thread(_answer, db_path, approval_id, True)
        outcome = await holding
        waited = time.monotonic() - answered
        ticking.cancel()
        return outcome, approval_id, waited, max(gaps)

    outcome, approval_id, waited, worst_gap = _run(db_path, scenario)
    assert outcome == HoldEnd("approved", approval_id, "approved by alice")
    assert waited < 0.5
    assert worst_gap < 0.2
    db = open_database(db_path)
    assert store.get(db, approval_id).used_by_request == "req_1"
    db.close()


def test_a_denial_and_an_expiry(db_path):
    async def scenario(broker):
        denied = asyncio.create_task(broker.hold(held(request_id="req_d"), gone=lambda: False))
        (approval_id,) = await _pending_id(db_path)
        await asyncio.to_thread(_answer, db_path, approval_id, False)
        started = time.monotonic()
        expired = await broker.hold(held(request_id="req_e", timeout=0.3), gone=lambda: False)
        return await denied, expired, time.monotonic() - started

    denied, expired, took = _run(db_path, scenario)
    assert (denied.state, denied.detail) == ("denied", "denied by alice")
    assert (expired.state, expired.detail) == ("expired", "no answer within 0.3s")
    assert 0.3 <= took < 1.0


def test_an_agent_that_gives_up_leaves_the_row_pending_and_its_identical_retry_passes_once(db_path):
    async def scenario(broker):
        gone = asyncio.Event()
        first = asyncio.create_task(broker.hold(held(), gone=gone.is_set))
        (approval_id,) = await _pending_id(db_path)
        gone.set()
        abandoned = await first
        await asyncio.to_thread(_answer, db_path, approval_id, True)
        other_body = asyncio.create_task(
            broker.hold(held(request_id="req_x", fingerprint="0" * 64), gone=lambda: False)
        )
        retry = await broker.hold(held(request_id="req_2"), gone=lambda: False)
        again = asyncio.create_task(broker.hold(held(request_id="req_3"), gone=lambda: False))
        pending = await _pending_id(db_path, 2)
        await broker.close()
        return abandoned, retry, await other_body, await again, approval_id, pending

    abandoned, retry, other_body, again, approval_id, pending = _run(db_path, scenario)
    assert (abandoned.state, abandoned.approval_id) == ("abandoned", approval_id)
    assert (retry.state, retry.approval_id) == ("approved", approval_id)
    assert approval_id not in pending  # the different body and the second retry both asked anew
    assert other_body.state == again.state == "cancelled"


def test_a_retry_while_the_first_is_still_pending_waits_on_the_same_row(db_path):
    async def scenario(broker):
        gone = asyncio.Event()
        first = asyncio.create_task(broker.hold(held(), gone=gone.is_set))
        (approval_id,) = await _pending_id(db_path)
        gone.set()
        await first
        retry = asyncio.create_task(broker.hold(held(request_id="req_2"), gone=lambda: False))
        await asyncio.sleep(0.2)
        assert [row for row in await _pending_id(db_path)] == [approval_id]
        await asyncio.to_thread(_answer, db_path, approval_id, True)
        return await retry, approval_id

    retry, approval_id = _run(db_path, scenario)
    assert (retry.state, retry.approval_id) == ("approved", approval_id)


def test_closing_answers_every_held_request_cancelled(db_path):
    async def scenario(broker):
        holds = [asyncio.create_task(broker.hold(held(request_id=f"req_{i}"), gone=lambda: False)) for i in range(3)]
        ids = await _pending_id(db_path, 3)
        assert await broker.close() == 3
        return [await h for h in holds], ids

    outcomes, ids = _run(db_path, scenario)
    assert {o.state for o in outcomes} == {"cancelled"}
    db = open_database(db_path)
    assert {store.get(db, i).state for i in ids} == {"cancelled"}
    db.close()


def test_grant_lookup(db_path):
    db = open_database(db_path)
    row = store.record_pending(db, held(), time.time(), 1)
    store.answer(db, row.id, approve=True, by="alice", now=time.time(), grant_for=60)
    db.close()
    h = held()

    async def scenario(broker):
        return (await broker.grant_for("ci", h.rule, h.rule_text), await broker.grant_for("cd", h.rule, h.rule_text))

    mine, theirs = _run(db_path, scenario)
    assert mine.approval_id == row.id and theirs is None
