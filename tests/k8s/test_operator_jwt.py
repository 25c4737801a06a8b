"""End-user JWT authentication in Kubernetes: an AuthenticationPolicy (and an AccessPolicy on request principals)
stored in a real kube-apiserver, reconciled by the operator, enforced by real Envoy sidecars."""

from __future__ import annotations

from typing import Any

from mesh_operator.testing.jwt import JwtIssuer
from mesh_operator.testing.kubemesh import KubeMesh, eventually
from tests.k8s.operator_support import fully_applied, kube_mesh

__all__ = ["kube_mesh"]  # the fixture, imported for pytest

ISSUER = "https://issuer.test"


def _authn(issuer: JwtIssuer) -> dict[str, Any]:
    return {
        "apiVersion": "meshwork.io/v1alpha1",
        "kind": "AuthenticationPolicy",
        "metadata": {"name": "backend-users"},
        "spec": {
            "targetRef": {"name": "backend"},
            "providers": [
                {
                    "name": "test-issuer",
                    "issuer": ISSUER,
                    "audiences": ["backend"],
                    "jwks": {"inline": issuer.jwks_json()},
                    "claimsToHeaders": [{"claim": "sub", "header": "x-jwt-sub"}],
                }
            ],
        },
    }


REQUIRE_ALICE = {
    "apiVersion": "meshwork.io/v1alpha1",
    "kind": "AccessPolicy",
    "metadata": {"name": "backend-alice"},
    "spec": {
        "targetRef": {"name": "backend"},
        "rules": [{"name": "alice", "action": "Allow", "from": [{"requestPrincipals": [f"{ISSUER}/alice"]}]}],
    },
}


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_an_authentication_policy_in_the_cluster_admits_valid_tokens_refuses_bad_ones_and_gates_principals(
    kube_mesh: KubeMesh,
) -> None:
    mesh = kube_mesh
    issuer = JwtIssuer(ISSUER)
    mesh.pod("caller", service_account="caller", upstreams=["backend"], serves=False)
    mesh.pod("backend-1", service_account="backend")
    mesh.service("backend", ["backend-1"])
    op = mesh.start_operator()
    mesh.wait_connected(op)
    mesh.apply(_authn(issuer))
    mesh.wait_status("AuthenticationPolicy", "backend-users", fully_applied, timeout=60)

    alice = _bearer(issuer.token(sub="alice", aud="backend"))
    r = eventually(lambda: (r := mesh.get("caller", "backend", "/", headers=alice)).status == 200 and r, timeout=20)
    assert r.json()["headers"]["x-jwt-sub"] == "alice"
    assert mesh.get("caller", "backend", "/", headers=_bearer(issuer.token(aud="frontend"))).status == 401
    assert mesh.get("caller", "backend", "/").status == 200, "no token passes while no access rule needs one"

    mesh.apply(REQUIRE_ALICE)
    mesh.wait_status("AccessPolicy", "backend-alice", fully_applied, timeout=60)
    bob = _bearer(issuer.token(sub="bob", aud="backend"))
    mesh.get_until("caller", "backend", "/", lambda r: r.status == 403, headers=bob)
    assert mesh.get("caller", "backend", "/", headers=alice).status == 200
    # Connections the caller opened before the policy keep the old filter chain for Envoy's drain time (5 s).
    mesh.get_until("caller", "backend", "/", lambda r: r.status == 403)  # no token: no principal
