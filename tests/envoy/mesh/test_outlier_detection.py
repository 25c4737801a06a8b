"""Outlier detection: an instance that keeps failing is ejected, and traffic moves to the healthy instances."""

from __future__ import annotations

from collections import Counter

from mesh_operator.testing.localmesh import LocalMeshBuilder, eventually

OUTLIER = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  outlierDetection: {consecutive5xx: 3, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50}
"""


def test_a_failing_instance_is_ejected_and_traffic_moves_to_the_healthy_ones(mesh: LocalMeshBuilder) -> None:
    mesh.service(
        "backend",
        instances=[
            {"name": "healthy-a"},
            {"name": "healthy-b"},
            {"name": "broken", "args": ["--fail-every", "1"]},
        ],
    )
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(OUTLIER)
    ejections = r"^cluster\.backend.*\.outlier_detection\.ejections_active$"
    with mesh.run() as m:
        assert m.stat_sum("caller", ejections) == 0
        before: Counter[int] = Counter()

        def ejected() -> bool:
            # Keep traffic flowing until the broken instance has failed 3 times in a row and is ejected.
            before.update(m.get("caller", "backend", "/").status for _ in range(3))
            return m.stat_sum("caller", ejections) == 1

        eventually(ejected, timeout=10, interval=0)
        assert before[503] >= 3  # the caller saw the failures that led to the ejection...
        after = [m.get("caller", "backend", f"/r{i}") for i in range(30)]
        # ...and none after it: within the 30 s ejection time only the healthy instances serve.
        assert [r.status for r in after] == [200] * 30
        served = Counter(r.served_by for r in after)
        assert set(served) == {"healthy-a", "healthy-b"}, served
        assert m.stat_sum("caller", r"^cluster\.backend.*\.outlier_detection\.ejections_enforced_consecutive_5xx$") == 1
