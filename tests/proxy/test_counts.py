"""The count service a proxy of several workers shares (firewall/proxy/counts.py), on a real Unix
socket: exact across clients, whole per request, and closed (not open) when it is gone."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from firewall.policy.decision import BudgetRef, LimitRef, RuleRef
from firewall.proxy.budget_store import BudgetStore
from firewall.proxy.counts import CountClient, CountService
from firewall.proxy.limiter import Limiter, LimitsUnavailable

RULE = RuleRef("test.policy", 2, "limit 60 per minute")


def limit(amount: int, key: str = "k1") -> LimitRef:
    return LimitRef(key, amount, "minute", None, RULE)


def budget(amount: int) -> BudgetRef:
    return BudgetRef("b1", amount, "tokens", "day", None, RULE)


async def _serving(tmp_path: Path):
    service = CountService(tmp_path)
    await service.start()
    return service


def test_two_workers_share_one_limit_exactly(tmp_path):
    async def scenario():
        service = await _serving(tmp_path)
        workers = [Limiter(counts=CountClient(service.path), timeout=5) for _ in range(2)]
        try:
            outcomes = await asyncio.gather(*(w.check((limit(60),), 100.0) for _ in range(50) for w in workers))
        finally:
            await asyncio.gather(*(w.counts.close() for w in workers))
            await service.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    admitted = [o for o in outcomes if o.over is None]
    refused = [o for o in outcomes if o.over is not None]
    assert len(admitted) == 60 and len(refused) == 40  # 60 in all, not 60 each
    assert {o.over.key for o in refused} == {"k1"} and all(o.retry_after >= 1 for o in refused)


def test_a_request_over_one_limit_uses_up_none_of_the_others(tmp_path):
    async def scenario():
        service = await _serving(tmp_path)
        limiter = Limiter(counts=CountClient(service.path), timeout=5)
        try:
            first = await limiter.check((limit(10, "wide"), limit(1, "narrow")), 1.0)
            second = await limiter.check((limit(10, "wide"), limit(1, "narrow")), 2.0)
            wide = [await limiter.check((limit(10, "wide"),), 3.0) for _ in range(10)]
        finally:
            await limiter.counts.close()
            await service.close()
        return first, second, wide

    first, second, wide = asyncio.run(scenario())
    assert first.over is None and second.over.key == "narrow"
    assert [o.over is None for o in wide] == [True] * 9 + [False]  # the refused request took no slot of "wide"


def test_a_budget_check_and_its_reservation_are_one_step(tmp_path):
    async def scenario():
        service = await _serving(tmp_path)
        stores = [BudgetStore(Limiter(counts=CountClient(service.path), timeout=5)) for _ in range(2)]
        now = 1_000_000.0
        try:
            held = await asyncio.gather(*(s.check((budget(1000),), (100,), now) for _ in range(8) for s in stores))
            counters = await stores[0].counters(now)
        finally:
            await asyncio.gather(*(s.limiter.counts.close() for s in stores))
            await service.close()
        return held, counters

    held, counters = asyncio.run(scenario())
    kinds = [type(h).__name__ for h in held]
    assert kinds.count("Hold") == 10 and kinds.count("Spent") == 6  # 10 reservations of 100 fill 1000
    [(key, used, _end)] = counters
    assert key[:2] == ("b1", "*") and used == 1000


@pytest.mark.parametrize(
    "request_line",
    [b"not json\n", b'["nothing"]\n', b'["badd", 1, [["b1", null, "day", 10]], ["w"], [-5]]\n'],
    ids=["not json", "unknown request", "a negative amount"],
)
def test_a_request_it_cannot_answer_is_an_error_and_the_service_serves_on(tmp_path, request_line):
    service = CountService(tmp_path)
    answer = json.loads(service.answer(request_line))
    assert "error" in answer
    control = json.loads(service.answer(b'["badd", 1, [["b1", null, "day", 10]], ["w"], [5]]\n'))
    assert control == {"ok": None}
    assert service.budgets.read((budget(10),), ("w",)) == (5,)  # the negative amount took nothing off


def test_a_service_that_is_gone_refuses_the_request(tmp_path):
    async def scenario():
        service = await _serving(tmp_path)
        limiter = Limiter(counts=CountClient(service.path), timeout=0.5)
        assert (await limiter.check((limit(5),), 1.0)).over is None  # control: it answers
        await service.close()
        await asyncio.sleep(0.05)
        with pytest.raises(LimitsUnavailable):
            await limiter.check((limit(5),), 2.0)
        with pytest.raises(LimitsUnavailable):  # and again: it tries to connect, and fails closed
            await limiter.check((limit(5),), 3.0)
        await limiter.counts.close()

    asyncio.run(scenario())


def test_a_client_without_a_service_fails_at_start(tmp_path):
    async def scenario():
        limiter = Limiter(counts=CountClient(tmp_path / "none.sock"), timeout=0.5)
        with pytest.raises(OSError):
            await limiter.check_storage()

    asyncio.run(scenario())


def test_the_socket_is_owner_only_and_a_long_path_goes_to_a_private_folder(tmp_path):
    async def scenario(where: Path):
        service = await _serving(where)
        mode = service.path.stat().st_mode & 0o777
        private = service.path.parent.stat().st_mode & 0o777
        path = service.path
        await service.close()
        return mode, private, path

    mode, _, path = asyncio.run(scenario(tmp_path))
    assert mode == 0o600 and path.parent == tmp_path
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    deep.mkdir(parents=True)
    mode, private, path = asyncio.run(scenario(deep))
    assert mode == 0o600 and private == 0o700 and path.parent != deep
    assert not path.parent.exists()  # removed at close


# ---- the wire: requests made in one turn go out in one write; lines cut anywhere ----


def test_many_requests_in_one_turn_are_each_answered_to_their_own_caller(tmp_path):
    """A worker sends the requests of one event-loop turn in one write; the answers come back in
    order and each reaches the request it answers. Control: the same checks, one at a time,
    against a MemoryWindows of this process."""
    from firewall.proxy.limiter import MemoryWindows

    checks = [(limit(1 + i % 3, f"k{i % 4}"),) for i in range(60)] + [(limit(2, "a"), limit(1, "b"))] * 3

    async def scenario():
        service = await _serving(tmp_path)
        limiter = Limiter(counts=CountClient(service.path), timeout=5)
        try:
            await limiter.check_storage()
            return await asyncio.gather(*(limiter.check(c, 10.0) for c in checks))  # one turn: one write
        finally:
            await limiter.counts.close()
            await service.close()

    shared = asyncio.run(scenario())
    local = MemoryWindows()
    expected = [local.check(c, 10.0) for c in checks]
    assert [(o.over, o.retry_after) for o in shared] == [(o.over, o.retry_after) for o in expected]
    assert sum(o.over is None for o in shared) not in (0, len(checks))  # some admitted, some refused


@pytest.mark.parametrize("cut", ["whole lines", "one byte at a time", "three lines in one write"])
def test_the_service_answers_lines_however_they_are_cut(tmp_path, cut):
    lines = [json.dumps(["limit", 1.0, [["k", None, 2, "minute"]]]).encode() + b"\n" for _ in range(3)]
    if cut == "one byte at a time":
        chunks = [bytes([b]) for line in lines for b in line]
    elif cut == "three lines in one write":
        chunks = [b"".join(lines)]
    else:
        chunks = lines

    async def scenario():
        service = await _serving(tmp_path)
        reader, writer = await asyncio.open_unix_connection(str(service.path))
        try:
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
            return [json.loads(await asyncio.wait_for(reader.readline(), 5)) for _ in lines]
        finally:
            writer.close()
            await service.close()

    answers = asyncio.run(scenario())
    assert answers == [{"ok": [None, 0]}, {"ok": [None, 0]}, {"ok": [0, 60]}]  # the third is over the 2


def test_a_line_past_the_limit_closes_its_connection_and_the_service_serves_on(tmp_path, monkeypatch):
    from firewall.proxy import counts

    monkeypatch.setattr(counts, "LINE_LIMIT", 1000)

    async def scenario():
        service = await _serving(tmp_path)
        reader, writer = await asyncio.open_unix_connection(str(service.path))
        writer.write(b"[" + b" " * 5000)  # no end of line in sight
        closed = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        limiter = Limiter(counts=CountClient(service.path), timeout=5)  # control: another worker is served
        try:
            outcome = await limiter.check((limit(5),), 1.0)
        finally:
            await limiter.counts.close()
            await service.close()
        return closed, outcome

    closed, outcome = asyncio.run(scenario())
    assert closed == b"" and outcome.over is None


TWO_ANSWERS = b'{"ok": [null, 0]}\n{"ok": [null, 0]}\n'


@pytest.mark.parametrize("reply", [b"not json\n", TWO_ANSWERS], ids=["garbage", "too many"])
def test_answers_that_are_not_the_protocol_fail_the_requests_closed(tmp_path, reply):
    """A peer on the socket that answers nonsense, or more answers than requests: the requests
    waiting are refused (LimitsUnavailable), never admitted. Control: a proper answer admits."""

    async def fake_service(answer: bytes):
        async def serve(reader, writer):
            while await reader.readline():
                writer.write(answer)
            writer.close()

        path = tmp_path / "fake.sock"
        path.unlink(missing_ok=True)
        return await asyncio.start_unix_server(serve, path=str(path)), path

    async def scenario(answer: bytes):
        server, path = await fake_service(answer)
        limiter = Limiter(counts=CountClient(path), timeout=2)
        try:
            return await limiter.check((limit(5),), 1.0), None
        except LimitsUnavailable as exc:
            return None, exc
        finally:
            await limiter.counts.close()
            server.close()

    admitted, _ = asyncio.run(scenario(b'{"ok": [null, 0]}\n'))
    assert admitted is not None and admitted.over is None  # control
    if reply.startswith(b"not json"):
        outcome, refused = asyncio.run(scenario(reply))
        assert outcome is None and isinstance(refused, LimitsUnavailable)
    else:  # the first answer settles the request; the extra one breaks the connection, fails nothing open
        outcome, refused = asyncio.run(scenario(reply))
        assert refused is None and outcome.over is None
