"""The periodic resync corrects what the watch missed and never undoes what the watch saw after the LIST."""

from __future__ import annotations

from typing import Any

from mesh_operator.kube.store import Store


def svc(name: str, rv: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop",
            "resourceVersion": str(rv)}, "spec": {"ports": [{"port": 8080}]}}  # fmt: skip


def names(store: Store) -> set[str]:
    return {k for k in "abc" if store.get("Service", f"shop/{k}") is not None}


def test_an_object_deleted_while_the_watch_was_away_is_removed_by_the_resync() -> None:
    calls = []
    store = Store(on_change=lambda: calls.append(1))
    store.upsert("Service", svc("a", 10))
    store.upsert("Service", svc("b", 11))
    before = len(calls)
    assert store.reconcile("Service", [svc("a", 10)], list_version=20) == (0, 1)
    assert names(store) == {"a"}
    assert len(calls) == before + 1  # a correction wakes translation


def test_a_missed_creation_and_a_missed_update_are_applied_and_an_agreeing_list_changes_nothing() -> None:
    calls = []
    store = Store(on_change=lambda: calls.append(1))
    store.upsert("Service", svc("a", 10))
    assert store.reconcile("Service", [svc("a", 15), svc("b", 16)], list_version=20) == (2, 0)
    assert store.get("Service", "shop/a")["metadata"]["resourceVersion"] == "15"  # type: ignore[index]
    before = len(calls)
    assert store.reconcile("Service", [svc("a", 15), svc("b", 16)], list_version=21) == (0, 0)
    assert len(calls) == before


def test_the_resync_never_undoes_a_watch_event_newer_than_its_list() -> None:
    store = Store()
    store.upsert("Service", svc("a", 10))
    store.upsert("Service", svc("c", 25))  # created after the LIST was taken at 20
    store.upsert("Service", svc("b", 11))
    store.delete("Service", svc("b", 22))  # deleted after the LIST: the LIST still shows it
    assert store.reconcile("Service", [svc("a", 10), svc("b", 11)], list_version=20) == (0, 0)
    assert names(store) == {"a", "c"}
    store.upsert("Service", svc("a", 30))  # updated after the LIST: the LIST's older copy does not replace it
    store.reconcile("Service", [svc("a", 10)], list_version=20)
    assert store.get("Service", "shop/a")["metadata"]["resourceVersion"] == "30"  # type: ignore[index]
