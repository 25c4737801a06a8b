"""The operator on a real kube-apiserver, with real Envoy sidecars standing in for the pods: policy status with
conditions and delivery receipts, and Services/EndpointSlices/Pods steering where Envoy routes."""

from __future__ import annotations

import socket
import time
from collections import Counter

from mesh_operator.testing import TestControlPlane
from mesh_operator.testing.kubemesh import KubeMesh, eventually
from tests.k8s.operator_support import (
    conditions,
    example_mesh,
    example_policies,
    fully_applied,
    kube_mesh,
    table,
)

__all__ = ["kube_mesh"]  # the fixture, imported for pytest

TP = "TrafficPolicy"


def test_each_example_policy_is_accepted_programmed_and_applied_by_every_affected_proxy(
    kube_mesh: KubeMesh, k8s_control_plane: TestControlPlane
) -> None:
    mesh = kube_mesh
    example_mesh(mesh)
    op = mesh.start_operator()
    mesh.wait_connected(op)
    policies = example_policies(mesh.namespace)
    for doc in policies:
        mesh.apply(doc)
    for doc in policies:
        obj = mesh.wait_status(doc["kind"], doc["metadata"]["name"], fully_applied, timeout=60)
        proxies = obj["status"]["proxies"]
        assert proxies["summary"] == f"{proxies['applied']}/{proxies['affected']}"
    # The TrafficPolicy is carried by backend's callers (frontend, loadgen, intruder) and by backend's three
    # instances (its rate-limited route is enforced inbound); the AccessPolicy by backend's instances only.
    assert mesh.get_policy(TP, "backend")["status"]["proxies"]["affected"] == 6
    assert mesh.get_policy("AccessPolicy", "backend")["status"]["proxies"]["affected"] == 3

    rows = table(k8s_control_plane, f"/apis/meshwork.io/v1alpha1/namespaces/{mesh.namespace}/trafficpolicies")
    assert rows["backend"]["Accepted"] == "True"
    assert rows["backend"]["Applied"] == "6/6"
    assert rows["backend"]["Age"]

    # The mesh does what the policies say: loadgen reaches backend, intruder is denied by the AccessPolicy.
    mesh.get_until("loadgen", "backend", "/hello", lambda r: r.status == 200)
    assert mesh.get("intruder", "backend", "/hello").status == 403


def test_status_follows_a_new_generation_and_is_not_rewritten_when_nothing_changes(kube_mesh: KubeMesh) -> None:
    mesh = kube_mesh
    mesh.pod("caller", service_account="caller", upstreams=["backend"], serves=False)
    mesh.pod("backend-1", service_account="backend", labels={"version": "v1"})
    mesh.service("backend", ["backend-1"])
    op = mesh.start_operator()
    mesh.wait_connected(op)
    doc = {
        "apiVersion": "meshwork.io/v1alpha1",
        "kind": TP,
        "metadata": {"name": "backend"},
        "spec": {"targetRef": {"name": "backend"}, "timeouts": {"request": "3s"}},
    }
    mesh.apply(doc)
    mesh.wait_status(TP, "backend", fully_applied)
    doc["spec"]["timeouts"]["request"] = "4s"
    updated = mesh.apply(doc)
    assert updated["metadata"]["generation"] == 2
    obj = mesh.wait_status(TP, "backend", fully_applied)
    assert obj["status"]["observedGeneration"] == 2

    writes = op.admin("/debug/kubez")["status_writes"]
    rv = obj["metadata"]["resourceVersion"]
    time.sleep(3.0)  # several writer rounds, proxies re-ACKing nothing new
    assert op.admin("/debug/kubez")["status_writes"] == writes
    assert mesh.get_policy(TP, "backend")["metadata"]["resourceVersion"] == rv


def test_a_policy_whose_target_is_missing_resolves_once_the_service_is_created(kube_mesh: KubeMesh) -> None:
    mesh = kube_mesh
    mesh.pod("caller", service_account="caller", upstreams=["backend", "reviews"], serves=False)
    mesh.pod("backend-1", service_account="backend")
    mesh.service("backend", ["backend-1"])
    op = mesh.start_operator()
    mesh.wait_connected(op)
    mesh.apply(
        {
            "apiVersion": "meshwork.io/v1alpha1",
            "kind": TP,
            "metadata": {"name": "reviews"},
            "spec": {"targetRef": {"name": "reviews"}, "timeouts": {"request": "2s"}},
        }
    )

    def unresolved(obj: dict) -> bool:
        return conditions(obj).get("ResolvedRefs") == "False"

    obj = mesh.wait_status(TP, "reviews", unresolved)
    resolved = next(c for c in obj["status"]["conditions"] if c["type"] == "ResolvedRefs")
    assert resolved["reason"] == "TargetNotFound"
    assert f"service {mesh.namespace}/reviews does not exist" in resolved["message"]
    assert "spec.targetRef" in resolved["message"]
    assert conditions(obj)["Accepted"] == "True"  # the policy itself is fine
    assert conditions(obj)["Programmed"] == "False"
    # The rest of the mesh keeps working.
    mesh.get_until("caller", "backend", "/x", lambda r: r.status == 200)

    mesh.pod("reviews-1", service_account="reviews")
    mesh.service("reviews", ["reviews-1"])
    generation = obj["metadata"]["generation"]
    obj = mesh.wait_status(TP, "reviews", fully_applied, timeout=30)
    assert obj["metadata"]["generation"] == generation  # the policy itself was not touched
    mesh.get_until("caller", "reviews", "/x", lambda r: r.served_by == "reviews-1")


def test_a_config_envoy_rejects_shows_in_the_policy_status_with_the_nack_text_and_the_proxy_name(
    kube_mesh: KubeMesh,
) -> None:
    mesh = kube_mesh
    # backend-2's inbound port is taken by another process: its Envoy cannot bind the listener and NACKs it.
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(1)
    try:
        mesh.pod("caller", service_account="caller", upstreams=["backend"], serves=False)
        mesh.pod("backend-1", service_account="backend")
        mesh.pod("backend-2", service_account="backend", inbound_port=squatter.getsockname()[1])
        mesh.service("backend", ["backend-1", "backend-2"])
        op = mesh.start_operator()
        mesh.apply(
            {
                "apiVersion": "meshwork.io/v1alpha1",
                "kind": "AccessPolicy",
                "metadata": {"name": "backend"},
                "spec": {
                    "targetRef": {"name": "backend"},
                    "rules": [
                        {
                            "name": "callers",
                            "action": "Allow",
                            "from": [{"serviceAccount": {"namespace": mesh.namespace, "name": "caller"}}],
                        }
                    ],
                },
            }
        )

        def rejected(obj: dict) -> bool:
            return bool(((obj.get("status") or {}).get("proxies") or {}).get("rejected"))

        obj = mesh.wait_status("AccessPolicy", "backend", rejected, timeout=60)
        proxies = obj["status"]["proxies"]
        [rejection] = proxies["rejected"]
        assert rejection["proxy"] == f"{mesh.namespace}/backend-2"
        assert "address already in use" in rejection["message"].lower()
        assert proxies["affected"] == 2
        # The other proxies keep their config: backend-1 applied it, and the caller reaches backend-1.
        obj = mesh.wait_status("AccessPolicy", "backend", lambda o: o["status"]["proxies"]["applied"] == 1)
        mesh.get_until("caller", "backend", "/x", lambda r: r.served_by == "backend-1")
        assert op.admin("/debug/kubez")["kopf_alive"]
    finally:
        squatter.close()


def test_services_endpointslices_and_pods_change_where_envoy_routes(kube_mesh: KubeMesh) -> None:
    mesh = kube_mesh
    mesh.pod("caller", service_account="caller", upstreams=["backend"], serves=False)
    mesh.pod("backend-1", service_account="backend")
    mesh.pod("backend-2", service_account="backend")
    mesh.service("backend", ["backend-1"])
    op = mesh.start_operator()
    mesh.wait_connected(op)

    def served(n: int = 20) -> Counter[str]:
        return Counter(mesh.get("caller", "backend", f"/r{i}").served_by for i in range(n))

    assert eventually(lambda: set(served()) == {"backend-1"}, timeout=20)
    mesh.set_endpoints("backend", ["backend-1", "backend-2"])  # scaled up
    assert eventually(lambda: set(served()) == {"backend-1", "backend-2"}, timeout=20)
    mesh.set_endpoints("backend", ["backend-1", "backend-2"], ready={"backend-1": False})  # not ready
    assert eventually(lambda: set(served()) == {"backend-2"}, timeout=20)
    mesh.set_endpoints("backend", ["backend-1", "backend-2"])
    mesh.delete_pod("backend-2")  # the pod is gone: its endpoint no longer counts
    assert eventually(lambda: set(served()) == {"backend-1"}, timeout=20)
    mesh.delete_service("backend")  # the Service is gone: the caller's sidecar stops routing to it

    def gone() -> bool:
        try:
            return mesh.get("caller", "backend", "/x", timeout=3).status != 200
        except OSError:
            return True  # the outbound listener itself is gone

    assert eventually(gone, timeout=20)
