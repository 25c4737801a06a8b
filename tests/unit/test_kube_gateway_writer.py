"""The Gateway API status writer against a fake REST boundary: what it writes, when it does not, and that other
controllers' entries and the object's resourceVersion go with every write."""

from __future__ import annotations

from typing import Any

import yaml

from mesh_operator.api.gateway import CONTROLLER_NAME
from mesh_operator.kube.errors import ApiError
from mesh_operator.kube.gateway import GatewayStatusWriter, GatewayStore
from mesh_operator.loader import load_text
from mesh_operator.translate.state import MeshState

INVENTORY = """
apiVersion: meshwork.io/v1alpha1
kind: Inventory
metadata: {name: t}
spec:
  services:
    - {name: web, namespace: shop, ports: [{port: 80}], instances: [{name: web-1, port: 9001}]}
"""
THEIRS = {"parentRef": {"name": "gw"}, "controllerName": "example.com/gw", "conditions": []}


class FakeRest:
    def __init__(self, fail: int | None = None) -> None:
        self.patches: list[tuple[str, Any]] = []
        self.fail = fail

    async def merge_patch(self, path: str, body: Any) -> Any:
        if self.fail is not None:
            raise ApiError("PATCH", path, self.fail, "conflict")
        self.patches.append((path, body))
        return body


def body(parent: dict[str, Any], status: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "shop", "generation": generation, "resourceVersion": "42"},
        "spec": {"parentRefs": [parent], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
        "status": status or {"parents": [THEIRS]},
    }


def setup(obj: dict[str, Any], rest: FakeRest) -> tuple[GatewayStore, GatewayStatusWriter]:
    store = GatewayStore()
    store.upsert("HTTPRoute", obj)
    clean = {k: v for k, v in obj.items() if k != "status"}
    state: MeshState = load_text(INVENTORY + "---\n" + yaml.safe_dump(clean), "t").state()
    writer = GatewayStatusWriter(rest, store, lambda: state, lambda: None, min_interval=0.0)
    return store, writer


SERVICE = {"group": "", "kind": "Service", "name": "web"}


async def test_our_entry_is_written_beside_theirs_with_the_resource_version_as_a_precondition() -> None:
    rest = FakeRest()
    _, writer = setup(body(SERVICE), rest)
    assert await writer.sync_once() == 1
    ((path, patch),) = rest.patches
    assert path == "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/r/status"
    assert patch["metadata"] == {"resourceVersion": "42"}
    parents = patch["status"]["parents"]
    assert parents[0] == THEIRS
    assert parents[1]["controllerName"] == CONTROLLER_NAME
    assert all(c["lastTransitionTime"] for c in parents[1]["conditions"])


async def test_nothing_is_written_when_the_object_already_carries_our_status() -> None:
    rest = FakeRest()
    store, writer = setup(body(SERVICE), rest)
    await writer.sync_once()
    (_, patch) = rest.patches[0]
    echoed = body(SERVICE, patch["status"])
    store.upsert("HTTPRoute", {**echoed, "metadata": {**echoed["metadata"], "resourceVersion": "43"}})
    assert await writer.sync_once() == 0


async def test_a_route_without_service_parents_gets_nothing_and_our_stale_entry_is_taken_back() -> None:
    gateway_parent = {"name": "gw"}
    rest = FakeRest()
    _, writer = setup(body(gateway_parent), rest)
    assert await writer.sync_once() == 0  # not ours at all: no write
    stale = {"parentRef": {"name": "web"}, "controllerName": CONTROLLER_NAME, "conditions": []}
    rest = FakeRest()
    _, writer = setup(body(gateway_parent, {"parents": [THEIRS, stale]}), rest)
    assert await writer.sync_once() == 1
    assert rest.patches[0][1]["status"]["parents"] == [THEIRS]


async def test_a_conflict_is_not_counted_as_a_failure_and_is_retried_next_round() -> None:
    rest = FakeRest(fail=409)
    _, writer = setup(body(SERVICE), rest)
    assert await writer.sync_once() == 0
    assert (writer.writes, writer.failures) == (0, 0)
    rest.fail = None
    assert await writer.sync_once() == 1
