"""The control plane's garbage-collector settings (xds_server.gc_policy)."""

from __future__ import annotations

import gc

import pytest

from xds_server import gc_policy


@pytest.fixture
def restored_gc():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_configure_collects_young_objects_rarely_but_keeps_full_collections(restored_gc):
    gc_policy.configure()
    young, _, full = gc.get_threshold()
    assert young >= 10_000  # a push's short-lived objects die by reference counting first
    assert full > 0  # full collections still happen: cycles in old objects are not leaked
    assert gc.isenabled()


def test_configure_freezes_the_start_up_heap(restored_gc):
    gc_policy.configure()
    assert gc.get_freeze_count() > 1000  # modules, classes, functions: never garbage, never walked again


def test_cycles_made_after_configure_are_still_collected(restored_gc):
    gc_policy.configure()

    class Node:
        pass

    collected = []
    for _ in range(1000):
        a, b = Node(), Node()
        a.peer, b.peer = b, a  # a cycle: reference counting alone never frees it
    gc.callbacks.append(lambda phase, info: collected.append(info.get("collected", 0)) if phase == "stop" else None)
    try:
        for _ in range(200_000):  # enough allocations for the raised generation-0 threshold
            a, b = Node(), Node()
            a.peer, b.peer = b, a
    finally:
        gc.callbacks.pop()
    assert sum(collected) > 0
