"""Enforce / Shadow / Off on real sidecars: an Off policy is validated and reported but changes nothing; a shadowed
rate limit serves every request and counts the ones it would have refused."""

from __future__ import annotations

from mesh_operator.testing.localmesh import LocalMeshBuilder

FAULT = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  mode: {mode}
  rules:
    - name: broken
      fault: {abort: {httpStatus: 503, percent: 100}}
"""

ALLOW_CALLER = """
apiVersion: meshwork.io/v1alpha1
kind: AccessPolicy
metadata: {name: backend-callers}
spec:
  targetRef: {name: backend}
  mode: "Off"
  rules:
    - name: callers
      action: Allow
      from: [{serviceAccount: {namespace: default, name: caller}}]
"""

RETRY_OFF = """
apiVersion: meshwork.io/v1alpha1
kind: RetryPolicy
metadata: {name: backend-retries}
spec:
  targetRef: {name: backend}
  mode: "Off"
  attempts: 3
  retryOn: [5xx]
"""

SHADOW_LIMIT = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  rules:
    - name: limited
      matches: [{path: {type: PathPrefix, value: /limited}}]
      rateLimit: {maxTokens: 5, tokensPerFill: 5, fillInterval: 60s, mode: Shadow}
"""


def _mesh(mesh: LocalMeshBuilder, *policies: str) -> None:
    mesh.service("backend", instances=[{"name": "backend-1", "args": ["--fail-every", "2"]}])
    mesh.client("caller", upstreams=["backend"])
    mesh.client("intruder", upstreams=["backend"])
    for p in policies:
        mesh.policy(p)


def test_policies_in_mode_off_change_nothing_and_their_status_says_so(mesh: LocalMeshBuilder) -> None:
    _mesh(mesh, FAULT.replace("{mode}", '"Off"'), ALLOW_CALLER, RETRY_OFF)
    with mesh.run() as m:
        # No injected 503 (TrafficPolicy Off), the intruder is not refused (AccessPolicy Off), and every second
        # request fails because the retries are not in force either (RetryPolicy Off).
        assert [m.get("intruder", "backend", f"/{i}").status for i in range(4)] == [200, 503, 200, 503]
        policies = m.policies()
        for ref in (
            "TrafficPolicy/default/backend",
            "AccessPolicy/default/backend-callers",
            "RetryPolicy/default/backend-retries",
        ):
            accepted = policies[ref]["accepted"]
            assert (accepted["status"], accepted["reason"]) == ("True", "Off"), accepted
            assert "mode is Off" in accepted["message"]
            assert policies[ref]["proxies"] == 0


def test_switching_a_policy_from_off_to_enforce_puts_it_in_force(mesh: LocalMeshBuilder) -> None:
    _mesh(mesh)
    file = mesh.policy(FAULT.replace("{mode}", '"Off"'))
    with mesh.run() as m:
        assert m.get("caller", "backend", "/").status == 200
        m.edit(file, FAULT.replace("{mode}", "Enforce"))
        assert [m.get("caller", "backend", f"/{i}").status for i in range(3)] == [503] * 3
        assert m.policies()["TrafficPolicy/default/backend"]["accepted"]["reason"] == "Accepted"


def test_a_shadowed_rate_limit_serves_every_request_and_counts_those_over_the_limit(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(SHADOW_LIMIT)
    with mesh.run() as m:
        assert [m.get("caller", "backend", f"/limited/{i}").status for i in range(12)] == [200] * 12
        # The bucket holds 5 tokens: 7 requests would have been refused. The stat prefix names the policy.
        over = m.stats("backend-1", "meshwork_local_rate_limit_shadow_trafficpolicy_default_backend")
        assert {k.rsplit(".", 1)[1]: v for k, v in over.items() if k.endswith(("rate_limited", "enforced"))} == {
            "rate_limited": 7,
            "enforced": 0,
        }, over
