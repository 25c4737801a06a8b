"""The store between kopf's thread and the control plane: changes that matter wake translation, echoes do not."""

from __future__ import annotations

from typing import Any

from mesh_operator.kube.store import Store
from mesh_operator.translate import PolicyKey


def tp(name: str, generation: int = 1, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "meshwork.io/v1alpha1",
        "kind": "TrafficPolicy",
        "metadata": {"name": name, "namespace": "shop", "generation": generation, "uid": f"u-{name}",
                     "managedFields": [{"manager": "kubectl"}]},
        "spec": {"targetRef": {"name": "backend"}, **spec},
        **({"status": status} if status else {}),
    }  # fmt: skip


def test_nothing_is_translated_before_the_initial_list_and_status_echoes_do_not_retranslate() -> None:
    calls = []
    store = Store(on_change=lambda: calls.append(1))
    store.upsert("TrafficPolicy", tp("a"))
    assert not store.synced
    store.mark_synced()
    assert store.synced
    before = len(calls)
    store.upsert("TrafficPolicy", tp("a", status={"observedGeneration": 1}))  # our own status write coming back
    assert len(calls) == before
    assert store.policy_records()[PolicyKey("TrafficPolicy", "shop", "a")].status == {"observedGeneration": 1}
    store.upsert("TrafficPolicy", tp("a", generation=2, timeouts={"request": "2s"}))
    assert len(calls) == before + 1


def test_a_snapshot_holds_parsed_policies_once_per_generation_and_schema_errors_as_records() -> None:
    store = Store()
    store.upsert("TrafficPolicy", tp("good"))
    store.upsert("TrafficPolicy", tp("bad", bogus=1))
    first = store.snapshot()
    second = store.snapshot()
    assert [p.metadata.name for p in first.state.policies] == ["good"]
    assert first.state.policies[0] is second.state.policies[0]  # same object: the translator's memo hits
    bad = first.policies[PolicyKey("TrafficPolicy", "shop", "bad")]
    assert any(v.path == "spec.bogus" for v in bad.violations)


def test_deletions_leave_the_state_and_only_the_mesh_named_default_counts() -> None:
    store = Store()
    store.upsert("TrafficPolicy", tp("a"))
    store.delete("TrafficPolicy", tp("a"))
    assert store.snapshot().state.policies == ()
    other = {"apiVersion": "meshwork.io/v1alpha1", "kind": "Mesh", "metadata": {"name": "other", "generation": 1},
             "spec": {"trustDomain": "example.org"}}  # fmt: skip
    store.upsert("Mesh", other)
    assert store.snapshot().state.mesh.spec.trust_domain == "cluster.local"
    store.upsert("Mesh", {**other, "metadata": {"name": "default", "generation": 1}})
    assert store.snapshot().state.mesh.spec.trust_domain == "example.org"


def test_policy_records_follow_every_event_a_new_generation_an_echo_a_deletion_and_a_resync() -> None:
    store = Store()
    key = PolicyKey("TrafficPolicy", "shop", "a")
    store.upsert("TrafficPolicy", tp("a", status={"observedGeneration": 0}))
    bad = tp("b", bogus=1)
    bad["metadata"]["resourceVersion"] = "5"
    store.upsert("TrafficPolicy", bad)
    assert store.policy_records()[key].generation == 1
    assert store.policy_records()[PolicyKey("TrafficPolicy", "shop", "b")].violations
    store.upsert("TrafficPolicy", tp("a", generation=2, status={"observedGeneration": 1}))
    store.upsert("TrafficPolicy", tp("a", generation=2, status={"observedGeneration": 2}))  # the echo of a write
    record = store.policy_records()[key]
    assert (record.generation, record.status) == (2, {"observedGeneration": 2})
    assert store.snapshot().policies == store.policy_records()
    store.delete("TrafficPolicy", tp("a", generation=2))
    assert key not in store.policy_records() and key not in store.snapshot().policies
    listed = tp("c", generation=3, status={"observedGeneration": 3})
    listed["metadata"]["resourceVersion"] = "7"
    store.reconcile("TrafficPolicy", [listed], 7)  # the periodic resync: b is gone, c is new
    assert set(store.policy_records()) == {PolicyKey("TrafficPolicy", "shop", "c")}
    assert store.policy_records()[PolicyKey("TrafficPolicy", "shop", "c")].status == {"observedGeneration": 3}
