"""Delta xDS: the same mesh over Delta ADS converges, serves traffic and follows a live edit."""

from __future__ import annotations

import json

import pytest

from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh

pytestmark = pytest.mark.timeout(90)


def split(v1: int, v2: int) -> str:
    return f"""
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {{name: backend}}
spec:
  targetRef: {{name: backend}}
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
  rules:
    - backends: [{{subset: v1, weight: {v1}}}, {{subset: v2, weight: {v2}}}]
"""


V1_ONLY = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  subsets: [{name: v1, labels: {version: v1}}]
  rules:
    - backends: [{subset: v1, weight: 100}]
"""


def active_clusters(m: RunningMesh) -> list[str]:
    dump = json.loads(m.sidecar_admin("caller", "/config_dump?resource=dynamic_active_clusters"))
    return sorted(c["cluster"]["name"] for c in dump["configs"])


def served(m: RunningMesh, n: int = 20) -> set[str]:
    return {m.get("caller", "backend", f"/r{i}").served_by for i in range(n)}


def test_a_mesh_on_delta_xds_converges_serves_traffic_and_applies_a_live_edit(mesh: LocalMeshBuilder) -> None:
    mesh.service(
        "backend",
        instances=[
            {"name": "backend-v1", "labels": {"version": "v1"}},
            {"name": "backend-v2", "labels": {"version": "v2"}},
        ],
    )
    mesh.client("caller", upstreams=["backend"])
    file = mesh.policy(split(100, 0))
    with mesh.run(delta=True) as m:  # returns once every proxy ACKed
        sync = m.sync()
        assert sorted(sync) == sorted(m.node_ids())
        assert {p["kind"] for p in sync.values()} == {"delta"}
        assert all(t["last_nack"] is None for p in sync.values() for t in p["types"].values())
        assert served(m) == {"backend-v1"}

        took = m.edit(file, split(0, 100))
        assert took < 2.0
        assert served(m) == {"backend-v2"}
        assert active_clusters(m) == ["backend.default|80", "backend.default|80|v1", "backend.default|80|v2"]

        # Delta sends removals explicitly: dropping the v2 subset removes its cluster from the caller's Envoy.
        m.edit(file, V1_ONLY)
        assert served(m) == {"backend-v1"}
        assert active_clusters(m) == ["backend.default|80", "backend.default|80|v1"]
