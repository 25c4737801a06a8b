"""End-user JWT authentication on real sidecars, with real keys and tokens signed by the test: valid tokens reach
the app with their claims in headers; every kind of invalid token is answered 401; no token passes unless an
AccessPolicy requires a request principal; JWKS fetched by Envoy from a URI, key rotation picked up."""

from __future__ import annotations

import time

from mesh_operator.testing.jwt import JwksServer, JwtIssuer, encode
from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh, eventually

ISSUER = "https://issuer.test"


def _authn(jwks: str, *, mode: str = "Enforce") -> str:
    return f"""
apiVersion: meshwork.io/v1alpha1
kind: AuthenticationPolicy
metadata: {{name: backend-users}}
spec:
  targetRef: {{name: backend}}
  mode: {mode}
  providers:
    - name: test-issuer
      issuer: {ISSUER}
      audiences: [backend]
      jwks: {jwks}
      from:
        - header: {{name: Authorization, prefix: "Bearer "}}
        - queryParam: access_token
        - cookie: session
      claimsToHeaders:
        - {{claim: sub, header: x-jwt-sub}}
        - {{claim: tier, header: x-jwt-tier}}
"""


def _inline(issuer: JwtIssuer) -> str:
    return "{inline: '" + issuer.jwks_json() + "'}"


REQUIRE_ALICE = """
apiVersion: meshwork.io/v1alpha1
kind: AccessPolicy
metadata: {name: backend-alice}
spec:
  targetRef: {name: backend}
  rules:
    - name: alice-or-gold
      action: Allow
      from:
        - requestPrincipals: ["https://issuer.test/alice"]
        - requestPrincipals: ["https://issuer.test/*"]
          claims: [{name: groups, values: [gold]}]
"""


def _mesh(mesh: LocalMeshBuilder, *policies: str) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    for p in policies:
        mesh.policy(p)


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _status(m: RunningMesh, token: str) -> int:
    return m.get("caller", "backend", "/", headers=_bearer(token)).status


def test_a_valid_token_reaches_the_app_with_its_claims_in_headers_and_a_forged_claim_header_is_dropped(
    mesh: LocalMeshBuilder,
) -> None:
    issuer = JwtIssuer(ISSUER)
    _mesh(mesh, _authn(_inline(issuer)))
    with mesh.run() as m:
        token = issuer.token(sub="alice", aud="backend", tier="gold")
        r = m.get("caller", "backend", "/", headers={**_bearer(token), "x-jwt-tier": "forged"})
        assert r.status == 200
        seen = r.json()["headers"]
        assert (seen["x-jwt-sub"], seen["x-jwt-tier"]) == ("alice", "gold")
        assert "authorization" not in seen, "the token is not forwarded unless forwardToken is set"
        # Without a token the request passes (no AccessPolicy requires one), but a forged claim header does not.
        r = m.get("caller", "backend", "/", headers={"x-jwt-sub": "root"})
        assert r.status == 200
        assert "x-jwt-sub" not in r.json()["headers"]
        # The token is also read from the query parameter and the cookie the policy names.
        assert m.get("caller", "backend", f"/?access_token={token}").status == 200
        assert m.get("caller", "backend", "/", headers={"cookie": f"session={token}"}).status == 200


def test_expired_wrong_issuer_wrong_audience_bad_signature_and_unsigned_tokens_get_401(
    mesh: LocalMeshBuilder,
) -> None:
    issuer = JwtIssuer(ISSUER)
    other = JwtIssuer(ISSUER)  # same issuer name, a key the JWKS does not hold
    _mesh(mesh, _authn(_inline(issuer)))
    with mesh.run() as m:
        good = issuer.token(aud="backend")
        head, _payload, sig = good.split(".")
        tampered_payload = issuer.token(aud="backend", sub="mallory").split(".")[1]
        cases = {
            "valid": good,
            "expired": issuer.token(aud="backend", lifetime=-120),
            "wrong issuer": issuer.token(aud="backend", issuer="https://evil.test"),
            "wrong audience": issuer.token(aud="frontend"),
            "signed by another key": other.token(aud="backend"),
            "payload changed after signing": f"{head}.{tampered_payload}.{sig}",
            "alg none": encode({"iss": ISSUER, "sub": "alice", "aud": "backend", "exp": int(time.time()) + 300}, None),
            "garbage": "not.a.token",
        }
        statuses = {name: _status(m, token) for name, token in cases.items()}
        assert statuses == {name: 200 if name == "valid" else 401 for name in cases}, statuses
        assert m.stat_sum("backend-1", r"jwt_authn\.meshwork_jwt\.denied$") == 7, m.stats("backend-1", "jwt")


def test_an_access_policy_on_request_principals_allows_one_subject_and_refuses_another(
    mesh: LocalMeshBuilder,
) -> None:
    issuer = JwtIssuer(ISSUER)
    _mesh(mesh, _authn(_inline(issuer)), REQUIRE_ALICE)
    with mesh.run() as m:
        assert _status(m, issuer.token(sub="alice", aud="backend")) == 200
        assert _status(m, issuer.token(sub="bob", aud="backend")) == 403
        assert _status(m, issuer.token(sub="carol", aud="backend", groups=["silver", "gold"])) == 200
        assert m.get("caller", "backend", "/").status == 403, "no token: no request principal"
        denied = m.stats("backend-1", "rbac")
        # The denial names the policy that refused: the allow filter's counters, and no allow rule matched.
        assert m.stat_sum("backend-1", r"rbac\.allow_\.denied$") == 2, denied
        allowed = {k for k, v in denied.items() if "policy.AccessPolicy/default/backend-alice@1" in k and v}
        assert allowed, denied


def test_keys_fetched_from_a_jwks_uri_and_a_rotated_key_is_picked_up(mesh: LocalMeshBuilder) -> None:
    issuer = JwtIssuer(ISSUER, alg="ES256")
    with JwksServer(issuer) as server:
        _mesh(mesh, _authn("{remote: {uri: '" + server.url + "', cacheDuration: 2s, timeout: 2s}}"))
        with mesh.run() as m:
            first = issuer.token(aud="backend")
            eventually(lambda: _status(m, first) == 200, timeout=20)
            assert server.fetches >= 1
            issuer.rotate()  # the JWKS now holds only the new key
            second = issuer.token(aud="backend")
            # Within a few cache periods Envoy refetches: the new key's tokens pass, the old key's are refused.
            eventually(lambda: _status(m, second) == 200 and _status(m, first) == 401, timeout=30, interval=0.5)


def test_a_shadowed_authentication_policy_counts_invalid_tokens_but_refuses_none(mesh: LocalMeshBuilder) -> None:
    issuer = JwtIssuer(ISSUER)
    _mesh(mesh, _authn(_inline(issuer), mode="Shadow"))
    with mesh.run() as m:
        assert _status(m, issuer.token(aud="frontend")) == 200
        assert _status(m, issuer.token(aud="backend", lifetime=-120)) == 200
        r = m.get("caller", "backend", "/", headers=_bearer(issuer.token(aud="backend", sub="alice")))
        assert r.json()["headers"]["x-jwt-sub"] == "alice", "a valid token still sets the claim headers"
        assert m.get("caller", "backend", "/").status == 200
        # The two invalid tokens are counted against the policy; the valid token and the missing one are not.
        counted = m.stats("backend-1", "jwt_shadow_")
        assert {k.split(".rbac.", 1)[1]: v for k, v in counted.items() if k.endswith("shadow_denied")} == {
            "jwt_shadow_.shadow_denied": 2,
            "jwt_shadow_.policy.AuthenticationPolicy/default/backend-users@1.shadow_denied": 2,
        }, counted
        # The access log names the shadowed policy on a request whose token it would have refused, and only there.
        expired = _bearer(issuer.token(aud="backend", lifetime=-120))
        assert m.get("caller", "backend", "/logged/expired", headers=expired).status == 200
        valid = _bearer(issuer.token(aud="backend", sub="alice"))
        assert m.get("caller", "backend", "/logged/valid", headers=valid).status == 200
        entries = eventually(lambda: (e := m.access_log_entries("backend-1", "/logged/")) and len(e) == 2 and e)
        named = {e["path"]: e["jwt_shadow_deny"] for e in entries}
        assert named == {
            "/logged/expired": "AuthenticationPolicy/default/backend-users@1",
            "/logged/valid": "-",
        }, named
