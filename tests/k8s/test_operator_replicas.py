"""Two operator replicas against one apiserver: one status writer at a time (a Lease), receipts counting the
proxies of both replicas, and the Lease moving to the survivor within its duration when the leader is killed."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from mesh_operator.testing.kubemesh import KubeMesh, OperatorProcess, eventually
from tests.k8s.operator_support import OPERATOR_NAMESPACE, fully_applied, kube_mesh
from xds_server.ports import free_port

__all__ = ["kube_mesh"]

LEASE_DURATION = 6.0
RENEW = 1.0
ARGS = ["--lease-duration", str(LEASE_DURATION), "--renew-period", str(RENEW)]


def leader_of(ops: list[OperatorProcess]) -> list[str]:
    return [op.identity for op in ops if op.proc and op.proc.poll() is None and op.admin("/debug/kubez")["leader"]]


def test_two_replicas_write_status_one_at_a_time_count_every_proxy_and_fail_over_within_the_lease_duration(
    kube_mesh: KubeMesh, k8s_api_client: client.ApiClient
) -> None:
    mesh = kube_mesh
    lease_name = f"meshwork-{mesh.namespace}"
    # Each replica serves xDS on its own port; the Lease is named per test so no earlier test's replica holds it.
    args = [*ARGS, "--status-interval", "0.5", "--lease-name", lease_name]
    a = mesh.operator("replica-a", extra_args=args)
    b = mesh.operator("replica-b", extra_args=args, xds_port=free_port())
    # Proxies split between the replicas: caller-a and backend-1 on replica a, caller-b on replica b.
    mesh.pod("backend-1", service_account="backend", xds_port=a.xds_port)
    mesh.pod("caller-a", service_account="caller", upstreams=["backend"], serves=False, xds_port=a.xds_port)
    mesh.pod("caller-b", service_account="caller", upstreams=["backend"], serves=False, xds_port=b.xds_port)
    mesh.service("backend", ["backend-1"])
    a.start()
    b.start()
    ops = [a, b]
    assert eventually(lambda: len(leader_of(ops)) == 1, timeout=30)
    [leader] = leader_of(ops)

    doc: dict[str, Any] = {
        "apiVersion": "meshwork.io/v1alpha1",
        "kind": "TrafficPolicy",
        "metadata": {"name": "backend"},
        "spec": {"targetRef": {"name": "backend"}, "timeouts": {"request": "3s"}},
    }
    mesh.apply(doc)
    obj = mesh.wait_status("TrafficPolicy", "backend", fully_applied, timeout=60)
    # Both callers carry the policy; each is connected to a different replica; both count.
    assert obj["status"]["proxies"]["affected"] == 2
    assert obj["status"]["proxies"]["applied"] == 2
    writes = {op.identity: op.admin("/debug/kubez")["status_writes"] for op in ops}
    assert writes[leader] > 0
    assert all(w == 0 for ident, w in writes.items() if ident != leader), writes
    coordination: Any = client.CoordinationV1Api(k8s_api_client)
    lease = coordination.read_namespaced_lease(lease_name, OPERATOR_NAMESPACE)
    assert lease.spec.holder_identity == leader

    # Kill the leader: the other replica takes the Lease within its duration and writes the next status.
    dead = next(op for op in ops if op.identity == leader)
    survivor = next(op for op in ops if op.identity != leader)
    dead.kill()
    killed_at = time.monotonic()
    eventually(lambda: survivor.admin("/debug/kubez")["leader"], timeout=LEASE_DURATION * 3, interval=0.1)
    took = time.monotonic() - killed_at
    assert took <= LEASE_DURATION + 2 * RENEW + 1.0, took
    doc["spec"]["timeouts"]["request"] = "4s"
    mesh.apply(doc)

    def caught_up(o: dict[str, Any]) -> bool:
        return (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]

    mesh.wait_status("TrafficPolicy", "backend", caught_up, timeout=30)
    assert survivor.admin("/debug/kubez")["status_writes"] > 0
    lease = coordination.read_namespaced_lease(lease_name, OPERATOR_NAMESPACE)
    assert lease.spec.holder_identity == survivor.identity
    assert lease.spec.lease_transitions >= 1
