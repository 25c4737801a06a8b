"""Local rate limits: each destination instance enforces its own token bucket on the limited route."""

from __future__ import annotations

from collections import Counter

from mesh_operator.testing.localmesh import LocalMeshBuilder

LIMITS = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  rules:
    - name: limited
      matches: [{path: {type: PathPrefix, value: /limited}}]
      rateLimit: {maxTokens: 5, tokensPerFill: 5, fillInterval: 60s, responseStatus: 429}
    - name: generous
      matches: [{path: {type: PathPrefix, value: /generous}}]
      rateLimit: {maxTokens: 100, tokensPerFill: 100, fillInterval: 60s}
"""


def test_requests_over_the_rate_get_the_configured_status(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(LIMITS)
    with mesh.run() as m:
        statuses = [m.get("caller", "backend", f"/limited/{i}").status for i in range(12)]
        # The bucket holds 5 tokens and refills only after 60 s: the first 5 pass, the rest are refused.
        assert statuses == [200] * 5 + [429] * 7
        assert m.stat_sum("backend-1", r"^meshwork_local_rate_limit.*limited.*\.rate_limited$") == 7


def test_requests_under_the_rate_and_on_other_routes_are_served(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(LIMITS)
    with mesh.run() as m:
        assert [m.get("caller", "backend", f"/generous/{i}").status for i in range(20)] == [200] * 20
        assert [m.get("caller", "backend", f"/other/{i}").status for i in range(20)] == [200] * 20


def test_the_limit_is_enforced_per_destination_instance(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend", instances=[{"name": "backend-a"}, {"name": "backend-b"}])
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(LIMITS)
    with mesh.run() as m:
        responses = [m.get("caller", "backend", f"/limited/{i}") for i in range(30)]
        served = Counter(r.served_by for r in responses if r.status == 200)
        # Two instances, 5 tokens each: exactly 10 requests pass, 5 on each, whatever order they arrive in.
        assert served == {"backend-a": 5, "backend-b": 5}, served
        assert sum(r.status == 429 for r in responses) == 20
