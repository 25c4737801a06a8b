"""A watch that silently stops delivering events (its TCP connection stalls: no data, no FIN, no RST) is noticed and
replaced within the configured watch timeouts, and the change made during the stall reaches the status."""

from __future__ import annotations

import json
import os
import time

from mesh_operator.testing import TestControlPlane
from mesh_operator.testing.kubemesh import KubeMesh
from tests.k8s.operator_support import conditions, kube_mesh
from tests.k8s.relay import StallingRelay
from tests.k8s.test_operator_resilience import policy, settled

__all__ = ["kube_mesh"]

CLIENT_TIMEOUT = float(os.environ.get("MESHWORK_STALL_CLIENT_TIMEOUT", "8"))


def test_a_stalled_watch_is_noticed_and_replaced_within_the_watch_timeouts(
    kube_mesh: KubeMesh, k8s_control_plane: TestControlPlane
) -> None:
    mesh = kube_mesh
    mesh.pod("caller", service_account="caller", upstreams=["backend", "reviews"], serves=False)
    mesh.service("backend", [])
    mesh.service("reviews", [])
    relay = StallingRelay(k8s_control_plane.secure_port)
    try:
        op = mesh.operator(
            extra_args=[
                "--watch-server-timeout", str(CLIENT_TIMEOUT * 10),  # the server never ends a watch by itself here
                "--watch-client-timeout", str(CLIENT_TIMEOUT),
            ]
        )  # fmt: skip
        op.kubeconfig = relay.kubeconfig(mesh.kubeconfig, mesh.directory / "relay-kubeconfig")
        op.start()
        mesh.apply(policy("before", "backend", 2))
        mesh.wait_status("TrafficPolicy", "before", lambda o: settled([o]), timeout=30)
        time.sleep(2)  # every watch is established and idle
        stalled = relay.freeze()
        assert stalled > 0
        translations = op.admin("/debug/kubez")["translations"]
        frozen_at = time.monotonic()
        mesh.apply(policy("during", "reviews", 3))  # straight to the apiserver, not through the relay
        # The change is not seen while the old watches hang (an unstalled watch delivers it within milliseconds) ...
        time.sleep(1.5)
        assert op.admin("/debug/kubez")["translations"] == translations, "the stall did not stop the watches"
        # ... and it is once the inactivity timeout (no event, not even a bookmark, for the client timeout) has
        # replaced every stalled stream with a new connection, which resumes from the last resourceVersion.
        mesh.wait_status("TrafficPolicy", "during", lambda o: settled([o]), timeout=CLIENT_TIMEOUT + 20)
        noticed = time.monotonic() - frozen_at
        print(f"stalled {stalled} connections; change seen after {noticed:.1f}s (client timeout {CLIENT_TIMEOUT}s)")
        assert relay.open_connections() > 0  # new connections replaced the stalled ones
        assert op.admin("/debug/kubez")["kopf_alive"]
    finally:
        relay.close()


def test_a_deletion_the_stalled_watches_never_delivered_is_caught_by_the_periodic_resync(
    kube_mesh: KubeMesh, k8s_control_plane: TestControlPlane
) -> None:
    mesh = kube_mesh
    mesh.pod("caller", service_account="caller", upstreams=["backend", "reviews"], serves=False)
    mesh.service("backend", [])
    mesh.service("reviews", [])
    relay = StallingRelay(k8s_control_plane.secure_port)
    try:
        op = mesh.operator(
            extra_args=["--watch-server-timeout", "600", "--watch-client-timeout", "600", "--resync-period", "3"]
        )
        op.kubeconfig = relay.kubeconfig(mesh.kubeconfig, mesh.directory / "relay-kubeconfig")
        op.start()
        mesh.apply(policy("on-reviews", "reviews", 2))
        mesh.wait_status("TrafficPolicy", "on-reviews", lambda o: settled([o]), timeout=30)
        time.sleep(1)
        assert relay.freeze() > 0  # the watches will not recover for 10 minutes
        mesh.delete_service("reviews")
        status = mesh.wait_status(
            "TrafficPolicy", "on-reviews", lambda o: conditions(o).get("ResolvedRefs") == "False", timeout=40
        )
        assert "reviews" in json.dumps(status["status"]["conditions"])
        resync = op.admin("/debug/kubez")["resync"]
        assert resync["removed"] >= 1 and resync["rounds"] >= 1
        assert "resync:" in op.log()
    finally:
        relay.close()
