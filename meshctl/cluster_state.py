"""The mesh as a cluster has it, for ``diff --against cluster`` and ``check -f … --kubeconfig``: one LIST of each
kind the operator watches, fed through the operator's own store and adapter, so the MeshState is the one the
operator translates (same Services/EndpointSlices/Pods adaptation, same policy parsing)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from mesh_operator.crdgen import plural as plural_of
from mesh_operator.kube.store import CORE_KINDS, POLICY_KINDS, Store
from mesh_operator.translate import MeshState
from meshctl import cluster
from meshctl.apply_cluster import _call


def read_state(args: argparse.Namespace) -> tuple[MeshState, list[str]]:
    """The cluster's MeshState and the adapter's problems. Raises AdminUnavailable (one line) when unreachable."""
    from kubernetes import client

    api = cluster.api_client(args)
    core = client.CoreV1Api(api)
    discovery = client.DiscoveryV1Api(api)
    custom = client.CustomObjectsApi(api)
    listers: dict[str, Any] = {
        "Service": core.list_service_for_all_namespaces,
        "EndpointSlice": discovery.list_endpoint_slice_for_all_namespaces,
        "Pod": core.list_pod_for_all_namespaces,
        "Node": core.list_node,
    }
    store = Store()
    for kind in CORE_KINDS:
        listing = _call(f"listing {kind}s", listers[kind], _preload_content=False)
        for body in _items(listing):
            store.upsert(kind, body)
    for kind in (*POLICY_KINDS, "Mesh"):
        plural = plural_of(kind)
        listing = _call(f"listing {plural}", custom.list_cluster_custom_object, cluster.GROUP, cluster.VERSION, plural)
        for body in listing.get("items", []):
            body.setdefault("kind", kind)
            body.setdefault("apiVersion", f"{cluster.GROUP}/{cluster.VERSION}")
            store.upsert(kind, body)
    store.mark_synced()
    snap = store.snapshot()
    return snap.state, [str(p) for p in snap.problems]


def overlay(state: MeshState, objects: list[Any], namespace: str) -> MeshState:
    """``state`` with the policies (and Mesh) of ``objects`` in place of those of the same identity, as
    server-side apply would leave the cluster (objects without a namespace land in ``namespace``)."""
    policies = {}
    for obj in state.policies:
        policies[(type(obj).__name__, obj.metadata.namespace or "default", obj.metadata.name)] = obj
    mesh = state.mesh
    for obj in objects:
        kind = type(obj).__name__
        if kind == "Mesh":
            mesh = obj
        elif kind in POLICY_KINDS:
            if not obj.metadata.namespace:
                obj = obj.model_copy(update={"metadata": obj.metadata.model_copy(update={"namespace": namespace})})
            policies[(kind, obj.metadata.namespace, obj.metadata.name)] = obj
    return replace(state, mesh=mesh, policies=tuple(policies[k] for k in sorted(policies)))


def _items(response: Any) -> list[dict[str, Any]]:
    """Raw JSON items of a LIST (as the watch delivers them to the operator: camelCase, not client models)."""
    import json

    data = json.loads(response.data)
    items: list[dict[str, Any]] = data.get("items", [])
    return items
