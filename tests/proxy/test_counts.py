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
