"""Gateway API mesh routes (an HTTPRoute whose parentRef is a Service) on a real local mesh: real Envoy sidecars,
real HTTP. The caller dials the ``front`` Service; the route sends its requests to the ``v1``/``v2``/``slow``
Services by match, weight, header edits, redirect, rewrite, mirror and timeout, as the destination apps see it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh, eventually

pytestmark = pytest.mark.envoy

ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: front, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: front, port: 80}]
  rules:
    - name: split
      backendRefs: [{name: v1, port: 80, weight: 80}, {name: v2, port: 80, weight: 20}]
    - name: by-header
      matches: [{headers: [{name: x-version, value: two}]}]
      backendRefs: [{name: v2, port: 80}]
    - name: edits
      matches: [{path: {type: PathPrefix, value: /edits}}]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{name: x-env, value: mesh}]
            add: [{name: x-added, value: by-route}]
            remove: [x-secret]
        - type: ResponseHeaderModifier
          responseHeaderModifier: {set: [{name: x-route, value: edits}]}
      backendRefs: [{name: v1, port: 80}]
    - name: moved
      matches: [{path: {type: PathPrefix, value: /old}}]
      filters:
        - type: RequestRedirect
          requestRedirect:
            hostname: example.org
            statusCode: 301
            path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
    - name: moved-to-root
      matches: [{path: {type: PathPrefix, value: /gone}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {statusCode: 302, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    - name: strip
      matches: [{path: {type: PathPrefix, value: /api}}]
      filters:
        - type: URLRewrite
          urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
      backendRefs: [{name: v1, port: 80}]
    - name: mirrored
      matches: [{path: {type: PathPrefix, value: /mirrored}}]
      filters:
        - type: RequestMirror
          requestMirror: {backendRef: {name: v2, port: 80}, percent: 100}
      backendRefs: [{name: v1, port: 80}]
    - name: cors
      matches: [{path: {type: PathPrefix, value: /cors}}]
      filters:
        - type: CORS
          cors:
            allowOrigins: ["https://app.example.com", "https://*.trusted.example"]
            allowMethods: [GET, POST]
            allowHeaders: [x-client]
            exposeHeaders: [x-served-by]
            maxAge: 600
            allowCredentials: true
      backendRefs: [{name: v1, port: 80}]
    - name: impatient
      matches: [{path: {type: PathPrefix, value: /slow}}]
      timeouts: {request: 300ms}
      backendRefs: [{name: slow, port: 80}]
"""


@pytest.fixture(scope="module")
def m(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMesh]:
    mesh = LocalMeshBuilder(Path(tmp_path_factory.mktemp("gamma")))
    mesh.service("front")
    mesh.service("v1")
    mesh.service("v2")
    mesh.service("slow", instances=[{"name": "slow-1", "args": ["--delay-ms", "3000"]}])
    mesh.client("caller", upstreams=["front"])
    mesh.policy(ROUTE)
    with mesh.run() as running:
        yield running


def inbound(m: RunningMesh, workload: str) -> int:
    return m.stat_sum(workload, r"^http\.inbound_\d+\.downstream_rq_total$")


def test_requests_to_the_parent_service_are_split_by_weight_between_the_backend_services(m: RunningMesh) -> None:
    n = 200
    served = Counter(m.get("caller", "front", f"/item/{i}").served_by for i in range(n))
    assert set(served) == {"v1-1", "v2-1"}, served  # never the parent's own instance
    # 80/20: with 200 requests the v1 share lies in [0.65, 0.93] except with probability < 1e-4.
    assert 0.65 <= served["v1-1"] / n <= 0.93, served


def test_a_header_match_picks_its_rule_and_the_prefix_match_is_by_path_segment(m: RunningMesh) -> None:
    assert {m.get("caller", "front", "/x", headers={"x-version": "two"}).served_by for _ in range(10)} == {"v2-1"}
    # /api matches /api and /api/...: the app sees the prefix replaced by "/" (not "//").
    api = m.get("caller", "front", "/api/items/7?full=1")
    assert (api.status, api.served_by, api.json()["path"]) == (200, "v1-1", "/items/7?full=1")
    assert m.get("caller", "front", "/api").json()["path"] == "/"
    # /apix is another path segment: not the strip rule, so it falls to the weighted split untouched.
    other = m.get("caller", "front", "/apix")
    assert other.json()["path"] == "/apix"


def test_request_and_response_header_modifiers_edit_what_the_app_and_the_caller_see(m: RunningMesh) -> None:
    resp = m.get("caller", "front", "/edits", headers={"x-env": "caller", "x-secret": "s3cret", "x-kept": "yes"})
    seen = resp.json()["headers"]
    assert (seen["x-env"], seen["x-added"], seen["x-kept"]) == ("mesh", "by-route", "yes")
    assert "x-secret" not in seen
    assert resp.headers["x-route"] == "edits"
    assert "x-route" not in m.get("caller", "front", "/item").headers


def test_a_redirect_answers_301_with_the_new_host_and_prefix_without_reaching_any_app(m: RunningMesh) -> None:
    before = sum(inbound(m, w) for w in ("front-1", "v1-1", "v2-1"))
    resp = m.get("caller", "front", "/old/page?x=1")
    assert resp.status == 301
    assert resp.headers["location"] == "http://example.org/new/page?x=1", resp.headers
    root = m.get("caller", "front", "/gone/page")
    assert root.status == 302
    assert root.headers["location"].endswith("/page") and "//page" not in root.headers["location"], root.headers
    assert sum(inbound(m, w) for w in ("front-1", "v1-1", "v2-1")) == before


def test_a_mirror_sends_a_copy_to_the_other_service_and_the_caller_sees_only_the_primary(m: RunningMesh) -> None:
    before = inbound(m, "v2-1")
    n = 20
    responses = [m.get("caller", "front", f"/mirrored/{i}") for i in range(n)]
    assert {(r.status, r.served_by) for r in responses} == {(200, "v1-1")}
    eventually(lambda: inbound(m, "v2-1") - before >= n, timeout=10)


def test_the_rule_request_timeout_cuts_a_slow_backend_off_with_504(m: RunningMesh) -> None:
    resp = m.get("caller", "front", "/slow")
    assert resp.status == 504
    assert b"upstream request timeout" in resp.body
    # Never before 300 ms; at most 400 ms late on a loaded 2-core machine; far below the backend's 3 s.
    assert 0.29 <= resp.elapsed <= 0.7, resp.elapsed


def test_cors_preflights_are_answered_by_the_sidecar_for_allowed_origins_only(m: RunningMesh) -> None:
    before = inbound(m, "v1-1")
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "x-client"}
    ok = m.get(
        "caller", "front", "/cors/x", method="OPTIONS", headers={"origin": "https://app.example.com", **preflight}
    )
    assert ok.status == 200, ok
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
    assert ok.headers["access-control-allow-methods"] == "GET,POST"
    assert ok.headers["access-control-allow-headers"] == "x-client"
    assert ok.headers["access-control-max-age"] == "600"
    assert ok.headers["access-control-allow-credentials"] == "true"
    wildcard = m.get(
        "caller", "front", "/cors/x", method="OPTIONS", headers={"origin": "https://a.trusted.example", **preflight}
    )
    assert wildcard.headers.get("access-control-allow-origin") == "https://a.trusted.example"
    # The preflights never reached the app.
    assert inbound(m, "v1-1") == before
    # A simple request from an allowed origin gets the CORS headers on the app's answer; another origin none.
    simple = m.get("caller", "front", "/cors/y", headers={"origin": "https://app.example.com"})
    assert (simple.status, simple.served_by) == (200, "v1-1")
    assert simple.headers["access-control-allow-origin"] == "https://app.example.com"
    assert simple.headers["access-control-expose-headers"] == "x-served-by"
    denied = m.get("caller", "front", "/cors/y", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in denied.headers
    # Routes without a CORS filter are untouched.
    plain = m.get("caller", "front", "/item", headers={"origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in plain.headers
