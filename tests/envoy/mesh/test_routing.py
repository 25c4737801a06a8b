"""Routing on path, header, method and query parameters, and weighted splits between subsets."""

from __future__ import annotations

from collections import Counter

from mesh_operator.testing.localmesh import LocalMeshBuilder

VERSIONS = [
    {"name": "backend-v1", "labels": {"version": "v1"}},
    {"name": "backend-v2", "labels": {"version": "v2"}},
]

ROUTES = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
  rules:
    - name: by-header
      matches: [{headers: [{name: x-version, type: Exact, value: v2}]}]
      backends: [{subset: v2, weight: 100}]
    - name: by-path
      matches: [{path: {type: PathPrefix, value: /v2/}}]
      backends: [{subset: v2, weight: 100}]
    - name: by-method
      matches: [{method: DELETE}]
      backends: [{subset: v2, weight: 100}]
    - name: by-query
      matches: [{queryParams: [{name: canary, type: Exact, value: "yes"}]}]
      backends: [{subset: v2, weight: 100}]
    - name: default
      backends: [{subset: v1, weight: 100}]
"""


def test_requests_are_routed_by_path_header_method_and_query(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend", instances=VERSIONS)
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(ROUTES)
    with mesh.run() as m:
        assert m.get("caller", "backend", "/").served_by == "backend-v1"
        assert m.get("caller", "backend", "/", headers={"x-version": "v2"}).served_by == "backend-v2"
        assert m.get("caller", "backend", "/v2/items").served_by == "backend-v2"
        assert m.get("caller", "backend", "/v3/items").served_by == "backend-v1"
        assert m.get("caller", "backend", "/items", method="DELETE").served_by == "backend-v2"
        assert m.get("caller", "backend", "/items?canary=yes").served_by == "backend-v2"
        assert m.get("caller", "backend", "/items?canary=no").served_by == "backend-v1"


SPLIT = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
  rules:
    - backends: [{subset: v1, weight: 80}, {subset: v2, weight: 20}]
"""


def test_a_weighted_split_sends_traffic_in_the_configured_ratio(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend", instances=VERSIONS)
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(SPLIT)
    with mesh.run() as m:
        n = 600
        seen = Counter(m.get("caller", "backend", f"/r{i}").served_by for i in range(n))
        # 80/20 over 600 requests: the standard deviation of the v2 count is ~9.8; allow 4 sigma.
        assert seen["backend-v1"] + seen["backend-v2"] == n
        assert abs(seen["backend-v2"] - 0.2 * n) < 40, seen
