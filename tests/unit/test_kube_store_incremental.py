"""The store hands the translator unchanged parts as the very same objects, and edited policies as the last tuple
with those positions replaced (the delta the translator reads), so its O(changed) path applies."""

from __future__ import annotations

import random
from typing import Any

from mesh_operator.kube.adapter import ClusterObjects, adapt
from mesh_operator.kube.store import Store
from tests.unit.test_kube_adapter import pod, service, slice_
from tests.unit.test_kube_store import tp
from xds_server.layered import positions_since


def _store() -> Store:
    store = Store()
    store.upsert("Service", service("backend"))
    store.upsert("EndpointSlice", slice_("backend", ["b1", "b2"]))
    store.upsert("Pod", pod("b1", "127.0.0.1"))
    store.upsert("Pod", pod("b2", "127.0.0.2"))
    store.upsert("TrafficPolicy", tp("a"))
    store.mark_synced()
    return store


def test_a_policy_change_keeps_the_adapted_services_and_workloads_as_the_same_objects() -> None:
    store = _store()
    first = store.snapshot().state
    store.upsert("TrafficPolicy", tp("a", generation=2, timeouts={"request": "2s"}))
    second = store.snapshot().state
    assert second.services is first.services and second.workloads is first.workloads
    assert second.policies != first.policies and second.policies[0].metadata.generation == 2
    assert store.snapshot().state.policies is second.policies  # nothing changed: the same tuple


def test_a_pod_or_endpoint_change_adapts_again_and_gives_what_adapting_from_scratch_gives() -> None:
    store = _store()
    first = store.snapshot().state
    store.upsert("EndpointSlice", slice_("backend", ["b1"]))
    store.delete("Pod", pod("b2", "127.0.0.2"))
    second = store.snapshot().state
    assert second.services is not first.services
    assert [i.workload for i in second.services["shop/backend"].instances] == ["b1"]
    objects = ClusterObjects(
        services={"shop/backend": service("backend")},
        endpoint_slices={"shop/backend-abc": slice_("backend", ["b1"])},
        pods={"shop/b1": pod("b1", "127.0.0.1")},
        nodes={},
    )
    fresh, _ = adapt(objects, second.policies, second.mesh)
    assert (second.services, second.workloads) == (fresh.services, fresh.workloads)


def test_an_edit_of_existing_policies_hands_the_last_tuple_with_those_positions_replaced() -> None:
    store = _store()
    store.upsert("TrafficPolicy", tp("b"))
    store.upsert("TrafficPolicy", tp("c"))
    first = store.snapshot().state.policies
    store.upsert("TrafficPolicy", tp("b", generation=2, timeouts={"request": "2s"}))
    second = store.snapshot().state.policies
    # the delta the translator reads: only position 1 may differ, the rest is the same tuple
    assert set(positions_since(first, second) or ()) == {1}
    assert [p.metadata.name for p in second] == ["a", "b", "c"] and second[1].metadata.generation == 2
    store.upsert("TrafficPolicy", tp("a", generation=2))
    third = store.snapshot().state.policies
    assert set(positions_since(second, third) or ()) == {0, 1}
    # and it is what sorting the parsed policies afresh gives
    fresh = Store()
    fresh.upsert("TrafficPolicy", tp("a", generation=2))
    fresh.upsert("TrafficPolicy", tp("b", generation=2, timeouts={"request": "2s"}))
    fresh.upsert("TrafficPolicy", tp("c"))
    assert third == fresh.snapshot().state.policies


def test_a_policy_created_or_deleted_is_inserted_or_removed_in_place_keeping_the_others() -> None:
    store = _store()
    first = store.snapshot().state.policies
    store.upsert("TrafficPolicy", tp("0"))
    second = store.snapshot().state.policies
    assert positions_since(first, second) is None and [p.metadata.name for p in second] == ["0", "a"]
    assert second[1] is first[0]  # the others are the very same objects: the translator sees one inserted
    store.delete("TrafficPolicy", tp("a"))
    third = store.snapshot().state.policies
    assert positions_since(second, third) is None and [p.metadata.name for p in third] == ["0"]


def test_random_policy_creations_edits_and_deletions_give_the_sorted_tuple_with_unchanged_policies_kept() -> None:
    rng = random.Random(5)
    store = _store()
    bodies: dict[str, dict[str, Any]] = {"a": tp("a")}
    previous = store.snapshot().state.policies
    for step in range(300):
        events = rng.choice([1, 1, 2, 3])  # events between two snapshots
        for name in rng.sample("abcdefghij", events):
            roll = rng.random()
            if roll < 0.3 and name in bodies:
                store.delete("TrafficPolicy", bodies.pop(name))
            else:
                generation = bodies[name]["metadata"]["generation"] + 1 if name in bodies else 1
                # now and then a version the validator refuses (not in the tuple until fixed)
                spec = {"timeouts": {"request": "junk" if roll > 0.9 else f"{step + 1}s"}}
                bodies[name] = tp(name, generation=generation, **spec)
                store.upsert("TrafficPolicy", bodies[name])
        policies = store.snapshot().state.policies
        fresh = Store()
        for body in bodies.values():
            fresh.upsert("TrafficPolicy", body)
        assert policies == fresh.snapshot().state.policies
        # what was not touched is the very same object
        kept = {id(p) for p in previous}
        assert sum(id(p) in kept for p in policies) >= len(policies) - events
        previous = policies
