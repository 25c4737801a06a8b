"""Active health checks: an instance whose health endpoint fails leaves rotation, and returns when it recovers."""

from __future__ import annotations

from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh, eventually, http

HEALTH = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  healthCheck:
    http: {path: /healthz}
    interval: 300ms
    timeout: 200ms
    unhealthyThreshold: 2
    healthyThreshold: 1
"""

HEALTHY = r"^cluster\.backend.*\.membership_healthy$"


def served_by(m: RunningMesh, n: int) -> set[str]:
    responses = [m.get("caller", "backend", f"/r{i}") for i in range(n)]
    assert [r.status for r in responses] == [200] * n
    return {r.served_by for r in responses}


def test_an_unhealthy_instance_leaves_rotation_and_returns_when_it_recovers(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend", instances=[{"name": "steady"}, {"name": "wobbly"}])
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(HEALTH)
    with mesh.run() as m:
        # Hosts start out unchecked: wait until the first checks have passed for both and both serve. (The
        # main thread's membership stat can lead the worker threads' host sets by a moment: wait for traffic too.)
        eventually(lambda: m.stat_sum("caller", HEALTHY) == 2, timeout=10)
        eventually(lambda: served_by(m, 6) == {"steady", "wobbly"}, timeout=5)

        assert http(m.app_address("wobbly") + "/admin-toggle-health").json()["healthy"] is False
        # Two failed checks 300 ms apart (plus jitter) take it out; allow a few seconds on a busy machine.
        eventually(lambda: m.stat_sum("caller", HEALTHY) == 1, timeout=5)
        eventually(lambda: served_by(m, 6) == {"steady"}, timeout=3)
        # Out of rotation means out: nothing reaches it while its health endpoint fails (it would still serve).
        assert served_by(m, 20) == {"steady"}
        assert m.stat_sum("caller", r"^cluster\.backend.*\.health_check\.failure$") >= 2

        assert http(m.app_address("wobbly") + "/admin-toggle-health").json()["healthy"] is True
        eventually(lambda: m.stat_sum("caller", HEALTHY) == 2, timeout=5)
        eventually(lambda: served_by(m, 6) == {"steady", "wobbly"}, timeout=3)
        assert served_by(m, 20) == {"steady", "wobbly"}
