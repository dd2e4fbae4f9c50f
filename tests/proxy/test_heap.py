"""The proxy's garbage-collection plan (firewall/proxy/addons/heap.py): the heap is frozen when the
proxy listens, and once more after warm-up at the first moment no agent connection is open, and
never again (a periodic freeze would keep every later garbage cycle for good)."""

from __future__ import annotations

import gc

import pytest

from firewall.proxy.addons.heap import Heap


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def _allocate(kept: list) -> None:
    kept.append([[i] for i in range(1000)])  # objects the collector tracks, kept alive


def _flows(heap: Heap, count: int) -> None:
    for i in range(count):
        heap.client_connected(None)
        if i % 2:
            heap.response(None)
        else:
            heap.error(None)  # a failed flow counts too
        heap.client_disconnected(None)


def test_the_heap_is_frozen_at_start_and_once_after_warm_up(unfrozen):
    kept: list = []
    heap = Heap(warm_flows=3)
    heap.running()
    at_start = gc.get_freeze_count()
    assert at_start > 0
    _allocate(kept)
    _flows(heap, 2)
    assert gc.get_freeze_count() == at_start  # control: not before warm-up is over
    _flows(heap, 1)
    after_warm_up = gc.get_freeze_count()
    assert after_warm_up >= at_start + 1000
    for _ in range(5):
        _allocate(kept)
        _flows(heap, 3)
    assert gc.get_freeze_count() == after_warm_up  # never again


def test_not_while_a_connection_is_open(unfrozen):
    """A connection's objects are never frozen: the warm-up freeze waits until none is open."""
    kept: list = []
    heap = Heap(warm_flows=2)
    heap.running()
    at_start = gc.get_freeze_count()
    heap.client_connected(None)  # a kept-alive connection, open throughout
    _flows(heap, 5)
    _allocate(kept)
    assert gc.get_freeze_count() == at_start
    heap.client_disconnected(None)
    assert gc.get_freeze_count() >= at_start + 1000


def test_garbage_is_collected_before_it_could_be_frozen(unfrozen):
    """What is unreachable at the second freeze is collected first, not kept for good."""
    heap = Heap(warm_flows=1)
    heap.running()
    collected = []

    class Watched:
        def __init__(self):
            self.me = self  # a cycle: only the collector frees it

        def __del__(self):
            collected.append(True)

    Watched()
    _flows(heap, 1)
    assert collected == [True]
