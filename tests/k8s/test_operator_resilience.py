"""The operator under failure: SIGKILLed during a burst of policy changes, and an apiserver paused with SIGSTOP.
Final status must be correct and nothing may be left behind."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from typing import Any

from kubernetes import client

from mesh_operator.testing import TestControlPlane
from mesh_operator.testing.kubemesh import KubeMesh, eventually
from tests.k8s.operator_support import OPERATOR_NAMESPACE, conditions, kube_mesh

__all__ = ["kube_mesh"]

TIMEOUTS = ["--watch-server-timeout", "4", "--watch-client-timeout", "6"]


def policy(name: str, target: str, seconds: int) -> dict[str, Any]:
    return {
        "apiVersion": "meshwork.io/v1alpha1",
        "kind": "TrafficPolicy",
        "metadata": {"name": name},
        "spec": {"targetRef": {"name": target}, "timeouts": {"request": f"{seconds}s"}},
    }


def settled(items: list[dict[str, Any]]) -> bool:
    return all(
        (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
        and conditions(o) == {"Accepted": "True", "ResolvedRefs": "True", "Programmed": "True"}
        for o in items
    )


def list_policies(mesh: KubeMesh) -> list[dict[str, Any]]:
    return list(mesh.custom.list_namespaced_custom_object("meshwork.io", "v1alpha1", mesh.namespace,
                                                          "trafficpolicies")["items"])  # fmt: skip


def test_an_operator_killed_during_200_policy_changes_ends_with_every_status_correct_and_nothing_leaked(
    kube_mesh: KubeMesh, k8s_api_client: client.ApiClient
) -> None:
    mesh = kube_mesh
    services = [f"svc-{i}" for i in range(40)]
    # One sidecar calls every service, so every policy is in a proxy's config (Programmed) and ACKed.
    mesh.pod("caller", service_account="caller", upstreams=services, serves=False)
    for s in services:
        mesh.service(s, [])
    op = mesh.start_operator()
    rng = random.Random(9)
    changes: list[tuple[str, int]] = [(f"tp-{i}", 1) for i in range(len(services))]
    changes += [(f"tp-{rng.randrange(len(services))}", rng.randrange(2, 30)) for _ in range(200 - len(changes))]
    kill_at = sorted(rng.sample(range(20, 190), 3))
    done = threading.Event()

    def burst() -> None:
        for n, (name, seconds) in enumerate(changes):
            mesh.apply(policy(name, services[int(name.split("-")[1])], seconds))
            if n in kill_at:
                time.sleep(rng.uniform(0.0, 0.3))
                op.kill()  # SIGKILL at a random point: mid-translation, mid-status-write, ...
                op.start(wait=False)
        done.set()

    worker = threading.Thread(target=burst)
    worker.start()
    worker.join(120)
    assert done.is_set()
    op.wait_ready()
    eventually(lambda: settled(items := list_policies(mesh)) and len(items) == len(services), timeout=60)
    items = list_policies(mesh)
    assert len(items) == len(services)
    final = dict(changes)  # the last change of each policy wins
    assert {o["metadata"]["name"]: o["spec"]["timeouts"]["request"] for o in items} == {
        name: f"{seconds}s" for name, seconds in final.items()
    }
    assert max(o["metadata"]["generation"] for o in items) > 1  # policies did change during the kills
    # Nothing written to users' objects: no finalizers, no kopf annotations, on policies or core objects.
    pods = mesh.core.list_namespaced_pod(mesh.namespace).items
    svcs = mesh.core.list_namespaced_service(mesh.namespace).items
    for meta in [o["metadata"] for o in items]:
        assert not meta.get("finalizers")
        assert not any("kopf" in k for k in (meta.get("annotations") or {}))
    for obj in [*pods, *svcs]:
        assert not obj.metadata.finalizers
        assert not any("kopf" in k for k in (obj.metadata.annotations or {}))
    # One leader Lease and one ACK-table Lease for the one identity: restarts reuse them.
    coordination: Any = client.CoordinationV1Api(k8s_api_client)
    leases = [lease.metadata.name for lease in coordination.list_namespaced_lease(OPERATOR_NAMESPACE).items]
    assert leases.count("meshwork-controller") == 1
    ack_leases = [n for n in leases if n.startswith("meshwork-acks-")]
    assert len(ack_leases) == len(set(ack_leases))


def test_an_apiserver_paused_with_sigstop_is_survived_and_changes_after_it_are_handled(
    kube_mesh: KubeMesh, k8s_control_plane: TestControlPlane
) -> None:
    mesh = kube_mesh
    mesh.pod("caller", service_account="caller", upstreams=["backend", "reviews"], serves=False)
    mesh.service("backend", [])
    mesh.service("reviews", [])
    op = mesh.start_operator(extra_args=TIMEOUTS)
    mesh.apply(policy("before", "backend", 2))
    mesh.wait_status("TrafficPolicy", "before", lambda o: settled([o]), timeout=30)
    pid = k8s_control_plane.pids["kube-apiserver"]
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(10)  # longer than the watch client timeout: every watch times out meanwhile
        assert op.proc is not None and op.proc.poll() is None  # the operator keeps running
    finally:
        os.kill(pid, signal.SIGCONT)
    eventually(lambda: k8s_control_plane.get("/readyz")[0] == 200, timeout=30)
    mesh.apply(policy("after", "reviews", 3))
    mesh.wait_status("TrafficPolicy", "after", lambda o: settled([o]), timeout=40)
    assert op.admin("/debug/kubez")["kopf_alive"]


def test_an_apiserver_restart_is_survived_and_changes_after_it_are_handled(
    kube_mesh: KubeMesh, k8s_control_plane: TestControlPlane
) -> None:
    mesh = kube_mesh
    mesh.pod("caller", service_account="caller", upstreams=["backend", "reviews"], serves=False)
    mesh.service("backend", [])
    mesh.service("reviews", [])
    op = mesh.start_operator(extra_args=TIMEOUTS)
    mesh.apply(policy("before", "backend", 2))
    mesh.wait_status("TrafficPolicy", "before", lambda o: settled([o]), timeout=30)
    k8s_control_plane.restart_apiserver()  # every connection and watch is cut; etcd keeps the state
    assert op.proc is not None and op.proc.poll() is None
    mesh.apply(policy("after", "reviews", 3))
    mesh.apply(policy("before", "backend", 4))
    mesh.wait_status("TrafficPolicy", "after", lambda o: settled([o]), timeout=60)
    updated = mesh.wait_status("TrafficPolicy", "before", lambda o: settled([o]), timeout=60)
    assert updated["metadata"]["generation"] == 2
    mesh.delete_service("reviews")  # a deletion after the restart reaches the store too
    mesh.wait_status("TrafficPolicy", "after", lambda o: conditions(o).get("ResolvedRefs") == "False", timeout=60)
    kubez = op.admin("/debug/kubez")
    assert kubez["kopf_alive"] and kubez["ready"]
