"""Header edits, redirects and rewrites, as the destination app (which echoes what it received) observes them."""

from __future__ import annotations

from mesh_operator.testing.localmesh import LocalMeshBuilder

POLICY = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  rules:
    - name: moved
      matches: [{path: {type: PathPrefix, value: /old/}}]
      redirect: {prefix: /new/, statusCode: 301}
    - name: moved-page
      matches: [{path: {type: Exact, value: /legacy-page}}]
      redirect: {path: /landing, hostname: www.example.com, statusCode: 307}
    - name: api
      matches: [{path: {type: PathPrefix, value: /api/}}]
      rewrite: {path: {type: ReplacePrefixMatch, value: /v2/}}
    - name: renamed
      matches: [{path: {type: Exact, value: /renamed}}]
      rewrite: {path: {type: ReplaceFullPath, value: /v2/the-new-name}}
    - name: host
      matches: [{path: {type: PathPrefix, value: /host}}]
      rewrite: {hostname: internal.example}
    - name: edits
      matches: [{path: {type: PathPrefix, value: /edits}}]
      requestHeaders:
        set: [{name: x-env, value: mesh}]
        add: [{name: x-added, value: by-mesh}]
        remove: [x-secret]
      responseHeaders:
        add: [{name: x-mesh-route, value: edits}]
        set: [{name: content-language, value: en}]
"""


def test_request_headers_are_set_added_and_removed_before_the_app_sees_them(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(POLICY)
    with mesh.run() as m:
        resp = m.get(
            "caller", "backend", "/edits", headers={"x-env": "from-caller", "x-secret": "s3cret", "x-kept": "yes"}
        )
        assert resp.status == 200
        seen = resp.json()["headers"]
        assert seen["x-env"] == "mesh"  # set overwrites the caller's value
        assert seen["x-added"] == "by-mesh"  # add adds
        assert "x-secret" not in seen  # remove removes
        assert seen["x-kept"] == "yes"
        # Response headers reach the caller.
        assert resp.headers["x-mesh-route"] == "edits"
        assert resp.headers["content-language"] == "en"
        # Other routes are untouched.
        other = m.get("caller", "backend", "/other", headers={"x-secret": "s3cret"})
        assert other.json()["headers"]["x-secret"] == "s3cret"
        assert "x-env" not in other.json()["headers"]
        assert "x-mesh-route" not in other.headers


def test_redirects_answer_with_the_status_and_location_without_reaching_the_app(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(POLICY)
    with mesh.run() as m:
        before = m.stat_sum("backend-1", r"^http\.inbound_\d+\.downstream_rq_total$")
        moved = m.get("caller", "backend", "/old/items?page=2")
        assert moved.status == 301
        assert moved.headers["location"].endswith("/new/items?page=2"), moved.headers
        page = m.get("caller", "backend", "/legacy-page")
        assert page.status == 307
        assert page.headers["location"] == "http://www.example.com/landing", page.headers
        assert m.stat_sum("backend-1", r"^http\.inbound_\d+\.downstream_rq_total$") == before


def test_path_and_host_rewrites_change_what_the_app_receives(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(POLICY)
    with mesh.run() as m:
        prefix = m.get("caller", "backend", "/api/items/7?full=1")
        assert prefix.status == 200
        assert prefix.json()["path"] == "/v2/items/7?full=1"
        full = m.get("caller", "backend", "/renamed?x=1")
        assert full.json()["path"] == "/v2/the-new-name?x=1"
        host = m.get("caller", "backend", "/host/check")
        assert host.json()["headers"]["host"] == "internal.example"
        assert host.json()["path"] == "/host/check"
        untouched = m.get("caller", "backend", "/plain")
        assert untouched.json()["path"] == "/plain"
        assert untouched.json()["headers"]["host"] != "internal.example"
