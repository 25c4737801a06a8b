"""The store hands the translator unchanged parts as the very same objects, and edited policies as the last tuple
with those positions replaced (the delta the translator reads), so its O(changed) path applies."""

from __future__ import annotations

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


def test_a_policy_created_or_deleted_sorts_the_policies_afresh() -> None:
    store = _store()
    first = store.snapshot().state.policies
    store.upsert("TrafficPolicy", tp("0"))
    second = store.snapshot().state.policies
    assert positions_since(first, second) is None and [p.metadata.name for p in second] == ["0", "a"]
    store.delete("TrafficPolicy", tp("a"))
    third = store.snapshot().state.policies
    assert positions_since(second, third) is None and [p.metadata.name for p in third] == ["0"]
