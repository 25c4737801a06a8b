"""Load balancing: round robin spreads requests evenly; ring hash keeps each hash key on one instance."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from mesh_operator.testing.localmesh import LocalMeshBuilder

INSTANCES = [{"name": "backend-a"}, {"name": "backend-b"}, {"name": "backend-c"}]


def lb_policy(spec: str) -> str:
    return f"""
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {{name: backend}}
spec:
  targetRef: {{name: backend}}
  loadBalancer: {spec}
"""


def test_round_robin_spreads_requests_evenly_across_instances(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend", instances=INSTANCES)
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(lb_policy("{type: RoundRobin}"))
    with mesh.run() as m:
        n = 90
        seen = Counter(m.get("caller", "backend", f"/r{i}").served_by for i in range(n))
        # Each of the sidecar's 2 worker threads runs its own strict rotation (hosts within one pick of each other),
        # and each new connection lands on either worker: every instance gets 30 +- 2. Allow +-4 (random choice
        # would have a standard deviation of ~4.5 per instance and fail this often).
        assert set(seen) == {"backend-a", "backend-b", "backend-c"}, seen
        assert all(abs(count - n / 3) <= 4 for count in seen.values()), seen


@pytest.mark.parametrize("kind", ["RingHash", "Maglev"])
def test_consistent_hashing_keeps_each_header_value_on_one_instance(mesh: LocalMeshBuilder, kind: str) -> None:
    mesh.service("backend", instances=INSTANCES)
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(lb_policy(f"{{type: {kind}, hashOn: [{{header: x-user}}]}}"))
    with mesh.run() as m:
        placement: dict[str, set[str]] = defaultdict(set)
        users = [f"user-{i}" for i in range(40)]
        for _ in range(3):
            for user in users:
                resp = m.get("caller", "backend", "/cart", headers={"x-user": user})
                assert resp.status == 200
                placement[user].add(resp.served_by)
        assert all(len(instances) == 1 for instances in placement.values()), placement
        # 40 keys over 3 hosts (whose ports, hence hash positions, change every run): all of them on only one or two
        # instances has odds ~3 × (2/3)^40 ~ 2e-7 for an even hash.
        assert len(set().union(*placement.values())) == 3, placement
