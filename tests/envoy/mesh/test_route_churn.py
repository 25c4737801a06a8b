"""Make-before-break under route churn (ANCHORS reliability test 4): flipping a split between v1 and v2 every
second while requests flow fails none of them [istio#29131]."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh

pytestmark = pytest.mark.timeout(120)


def to(subset: str) -> str:
    return f"""
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {{name: backend}}
spec:
  targetRef: {{name: backend}}
  subsets: [{{name: {subset}, labels: {{version: {subset}}}}}]
  rules:
    - backends: [{{subset: {subset}, weight: 100}}]
"""


class Traffic(threading.Thread):
    def __init__(self, m: RunningMesh) -> None:
        super().__init__(daemon=True)
        self.m = m
        self.served: Counter[str] = Counter()
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            i += 1
            try:
                r = self.m.get("caller", "backend", f"/churn/{i}")
                if r.status == 200:
                    self.served[r.served_by] += 1
                else:
                    self.failures.append(f"{r.status} {r.headers.get('x-envoy-response-flags', '')} {r.body[:200]!r}")
            except OSError as e:
                self.failures.append(repr(e))
            time.sleep(0.002)


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_flipping_the_route_between_subsets_every_second_fails_no_request(mesh: LocalMeshBuilder, delta: bool) -> None:
    """Each flip also removes the old subset's cluster: the new cluster must be warm before the route points at
    it, and the old one may go only after no route uses it."""
    mesh.service(
        "backend",
        instances=[
            {"name": "backend-v1", "labels": {"version": "v1"}},
            {"name": "backend-v2", "labels": {"version": "v2"}},
        ],
    )
    mesh.client("caller", upstreams=["backend"])
    file = mesh.policy(to("v1"))
    with mesh.run(delta=delta) as m:
        traffic = Traffic(m)
        traffic.start()
        try:
            for flip in range(8):
                m.write(file, to("v2" if flip % 2 == 0 else "v1"))
                time.sleep(1.0)
            m.wait_applied()
            time.sleep(0.3)
        finally:
            traffic.stopping.set()
            traffic.join(timeout=10)
        assert traffic.failures == []
        assert traffic.served["backend-v1"] > 50 and traffic.served["backend-v2"] > 50, traffic.served
        assert m.policies()["TrafficPolicy/default/backend"]["rejected"] == {}
