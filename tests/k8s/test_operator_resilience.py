"""The operator under failure: SIGKILLed during a burst of policy changes, a watch that silently stops delivering,
and an apiserver paused with SIGSTOP. Final status must be correct and nothing may be left behind."""

from __future__ import annotations

import contextlib
import os
import random
import select
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import yaml
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
    assert {o["metadata"]["generation"] for o in items} >= {1}
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


class StallingProxy:
    """A TCP relay on 127.0.0.1 in front of the apiserver. ``stall()`` silently stops every connection open at that
    moment (nothing forwarded, nothing closed: a dead network path); new connections flow normally."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._epoch = 0
        self._stalled_before = 0
        self._closed = threading.Event()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        self._epoch += 1
        self._stalled_before = self._epoch

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(self.target)
            self._conns += [down, up]
            epoch = self._epoch
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(a, b, epoch), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, epoch: int) -> None:
        while not self._closed.is_set():
            if epoch < self._stalled_before:
                time.sleep(0.1)  # stalled: hold everything
                continue
            ready, _, _ = select.select([src], [], [], 0.1)
            if not ready:
                continue
            try:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self.listener.close()
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.close()


def test_a_watch_that_silently_stops_delivering_is_noticed_and_recovered_within_the_configured_timeouts(
    kube_mesh: KubeMesh, k8s_control_plane: TestControlPlane
) -> None:
    mesh = kube_mesh
    proxy = StallingProxy(("127.0.0.1", k8s_control_plane.secure_port))
    try:
        config = yaml.safe_load(k8s_control_plane.kubeconfig_path.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
        kubeconfig = mesh.directory / "via-proxy.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        mesh.kubeconfig = Path(kubeconfig)
        mesh.pod("caller", service_account="caller", upstreams=["backend"], serves=False)
        mesh.service("backend", [])
        op = mesh.start_operator(extra_args=TIMEOUTS)
        mesh.apply(policy("before", "backend", 2))
        mesh.wait_status("TrafficPolicy", "before", lambda o: settled([o]), timeout=30)

        proxy.stall()  # every open watch (and pooled connection) now hangs without an error
        stalled_at = time.monotonic()
        mesh.apply(policy("during", "backend", 3))
        mesh.wait_status("TrafficPolicy", "during", lambda o: settled([o]), timeout=40)
        took = time.monotonic() - stalled_at
        # Noticed after the client timeout (6 s), re-watched, translated, status written: well under 40 s.
        assert took < 6 + 15, took
        assert op.admin("/debug/kubez")["kopf_alive"]
    finally:
        proxy.close()


def test_an_apiserver_paused_with_sigstop_is_survived_and_changes_after_it_are_handled(
    kube_mesh: KubeMesh, k8s_control_plane: TestControlPlane
) -> None:
    mesh = kube_mesh
    mesh.pod("caller", service_account="caller", upstreams=["backend"], serves=False)
    mesh.service("backend", [])
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
    mesh.apply(policy("after", "backend", 3))
    mesh.wait_status("TrafficPolicy", "after", lambda o: settled([o]), timeout=40)
    assert op.admin("/debug/kubez")["kopf_alive"]
