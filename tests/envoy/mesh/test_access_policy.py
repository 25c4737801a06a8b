"""AccessPolicy on real sidecars: allow by identity, DENY over ALLOW, Shadow mode, and denials that name the policy
(per-policy counters; the access log's ``details`` field names it too, flushed by Envoy every ~10 s)."""

from __future__ import annotations

from mesh_operator.testing.localmesh import LocalMeshBuilder

ALLOW_CALLER = """
apiVersion: meshwork.io/v1alpha1
kind: AccessPolicy
metadata: {name: backend-callers}
spec:
  targetRef: {name: backend}
  mode: {mode}
  rules:
    - name: callers
      action: Allow
      from: [{serviceAccount: {namespace: default, name: caller}}]
"""

DENY_ADMIN = """
apiVersion: meshwork.io/v1alpha1
kind: AccessPolicy
metadata: {name: backend-no-admin}
spec:
  targetRef: {name: backend}
  rules:
    - name: no-admin
      action: Deny
      to: [{paths: [{type: PathPrefix, value: /admin}]}]
"""


def _mesh(mesh: LocalMeshBuilder, *policies: str) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    mesh.client("intruder", upstreams=["backend"])
    for p in policies:
        mesh.policy(p)


def test_the_allowed_identity_gets_200_and_another_identity_gets_403(mesh: LocalMeshBuilder) -> None:
    _mesh(mesh, ALLOW_CALLER.replace("{mode}", "Enforce"))
    with mesh.run() as m:
        assert m.get("caller", "backend", "/").status == 200
        assert m.get("intruder", "backend", "/").status == 403


def test_deny_overrides_allow_and_the_denial_names_the_policy(mesh: LocalMeshBuilder) -> None:
    _mesh(mesh, ALLOW_CALLER.replace("{mode}", "Enforce"), DENY_ADMIN)
    with mesh.run() as m:
        assert m.get("caller", "backend", "/public").status == 200
        assert m.get("caller", "backend", "/admin/users").status == 403
        denied = {k.split(".rbac.", 1)[1]: v for k, v in m.stats("backend-1", "rbac").items() if k.endswith("denied")}
        assert {k: v for k, v in denied.items() if v} == {
            "deny_.denied": 1,
            "deny_.policy.AccessPolicy/default/backend-no-admin@1#no-admin.denied": 1,
        }


def test_shadow_mode_never_denies_but_counts_what_it_would_deny(mesh: LocalMeshBuilder) -> None:
    _mesh(mesh, ALLOW_CALLER.replace("{mode}", "Shadow"))
    with mesh.run() as m:
        assert m.get("caller", "backend", "/").status == 200
        for _ in range(3):
            assert m.get("intruder", "backend", "/").status == 200
        shadow = {k: v for k, v in m.stats("backend-1", "rbac").items() if k.endswith("shadow_denied")}
        assert list(shadow.values()) == [3], shadow
