"""Enforce / Shadow / Off on real sidecars: an Off policy is validated and reported but changes nothing; a shadowed
rate limit or access rule serves every request, counts the ones it would have refused and names the policy in the
access log."""

from __future__ import annotations

from mesh_operator.testing.localmesh import LocalMeshBuilder, eventually

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
        # A caller cannot forge the header that names the shadowed policy: the sidecar strips it on arrival.
        r = m.get("caller", "backend", "/free", headers={"x-meshwork-shadow-rate-limited": "forged"})
        assert r.status == 200 and "x-meshwork-shadow-rate-limited" not in r.json()["headers"]
        # The access log names the shadowed policy on exactly the requests it would have refused.
        entries = eventually(lambda: (e := m.access_log_entries("backend-1", "/limited/")) and len(e) == 12 and e)
        named = [e["rate_limit_shadow"] for e in sorted(entries, key=lambda e: int(e["path"].rsplit("/", 1)[1]))]
        assert named == ["-"] * 5 + ["TrafficPolicy/default/backend@1"] * 7, named
        free = eventually(lambda: m.access_log_entries("backend-1", "/free"))
        assert free[0]["rate_limit_shadow"] == "-", free


SHADOW_DENY = """
apiVersion: meshwork.io/v1alpha1
kind: AccessPolicy
metadata: {name: no-intruders}
spec:
  targetRef: {name: backend}
  mode: Shadow
  rules:
    - name: intruder
      action: Deny
      from: [{serviceAccount: {namespace: default, name: intruder}}]
"""


def test_a_shadowed_access_policy_refuses_nobody_and_the_access_log_names_it(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    mesh.client("intruder", upstreams=["backend"])
    mesh.policy(SHADOW_DENY)
    with mesh.run() as m:
        assert m.get("intruder", "backend", "/from-intruder").status == 200, "Shadow never refuses"
        assert m.get("caller", "backend", "/from-caller").status == 200
        intruder = eventually(lambda: m.access_log_entries("backend-1", "/from-intruder"))
        caller = eventually(lambda: m.access_log_entries("backend-1", "/from-caller"))
        # The rule a shadowed Deny matched, named by policy; nothing for the caller it does not match.
        assert intruder[0]["rbac_shadow_deny"].startswith("AccessPolicy/default/no-intruders@1"), intruder
        assert caller[0]["rbac_shadow_deny"] == "-", caller
        shadow = m.stats("backend-1", "shadow_deny_")
        assert any("AccessPolicy/default/no-intruders" in k and v == 1 for k, v in shadow.items()), shadow
