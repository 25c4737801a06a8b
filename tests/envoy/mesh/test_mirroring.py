"""Mirroring: a shadow subset receives a copy of live traffic; callers only ever see the primary's answers."""

from __future__ import annotations

from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh, eventually

MIRROR = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  subsets: [{name: primary, labels: {role: primary}}, {name: shadow, labels: {role: shadow}}]
  rules:
    - backends: [{subset: primary, weight: 100}]
      mirror: {subset: shadow, percent: 100}
"""


def inbound_requests(m: RunningMesh, workload: str) -> int:
    """Requests that reached the workload's sidecar from the mesh."""
    return m.stat_sum(workload, r"^http\.inbound_\d+\.downstream_rq_total$")


def test_the_shadow_receives_a_copy_of_every_request_and_the_caller_sees_only_the_primary(
    mesh: LocalMeshBuilder,
) -> None:
    mesh.service(
        "backend",
        instances=[
            {"name": "primary", "labels": {"role": "primary"}},
            # The shadow fails every request: a broken shadow must never show through to the caller.
            {"name": "shadow", "labels": {"role": "shadow"}, "args": ["--fail-every", "1"]},
        ],
    )
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(MIRROR)
    with mesh.run() as m:
        shadow_before = inbound_requests(m, "shadow")
        n = 30
        responses = [m.get("caller", "backend", f"/order/{i}") for i in range(n)]
        assert [r.status for r in responses] == [200] * n
        assert {r.served_by for r in responses} == {"primary"}
        assert {r.json()["path"] for r in responses} == {f"/order/{i}" for i in range(n)}
        # Mirrored requests are fire-and-forget: wait (bounded) until the shadow's sidecar has seen all copies.
        eventually(lambda: inbound_requests(m, "shadow") - shadow_before >= n, timeout=10)
        assert inbound_requests(m, "primary") >= n
        # The shadow answered 503 to every copy; the caller's view above was unaffected.
        assert m.stat_sum("shadow", r"^http\.inbound_\d+\.downstream_rq_5xx$") >= n
