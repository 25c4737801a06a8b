"""Story: Gateway API HTTPRoutes on a Service (mesh mode, GAMMA) do what the conformance suite does not test, seen
through real pods of the example app: a request timeout answered 504 by the caller's sidecar, a mirror whose copies
reach another version while the caller only sees the first, CORS preflights answered for allowed origins only, and
the route's status conditions (missing backend vs. good route). Deleting a route restores round robin.

The operator discovers the Gateway API kinds at start, so the module installs upstream's v1.6.1 standard-channel CRDs
(`make gateway-api-crds`) and restarts the control plane once; the CRDs stay installed (the other stories do not use
them). Each route is judged only once its status says every affected sidecar applied it (``meshwork.io/Applied``).
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.kit import (
    DEPLOYMENT,
    NS,
    Mesh,
    Namespace,
    Reply,
    apply,
    ca_bundles_set,
    call,
    deploy_example_app,
    get_json,
    pods,
    rollout,
    wait,
    wait_synced,
)

CRDS = Path.home() / ".cache" / "meshwork" / "gateway-api" / "v1.6.1" / "standard.yaml"
CONTROLLER = "meshwork.io/mesh-controller"
BACKEND = "http://backend:8080"


@pytest.fixture(scope="module")
def gateway_api(mesh: Mesh) -> Mesh:
    """The Gateway API CRDs served, and the control plane restarted so that it watches them."""
    c = mesh.cluster
    if not CRDS.exists():
        pytest.fail(f"Gateway API CRDs missing at {CRDS}: run `make gateway-api-crds`", pytrace=False)
    c.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    c.kubectl("wait", "--for=condition=Established", "crd/httproutes.gateway.networking.k8s.io", "--timeout=60s")
    c.kubectl("rollout", "restart", f"deployment/{DEPLOYMENT}", "-n", NS)
    rollout(c, NS, DEPLOYMENT, timeout=180)
    wait("one control-plane pod (the restarted one)", lambda: len(mesh.control_plane_pods()) == 1, 90)
    wait("the webhooks' caBundle is set by the control plane", lambda: ca_bundles_set(c), 60)
    return mesh


@pytest.fixture(scope="module")
def shop(gateway_api: Mesh) -> Iterator[str]:
    mesh = gateway_api
    ns = Namespace(mesh.cluster, "routes")
    deploy_example_app(mesh, ns.name)
    # one Service per version, for backendRefs (the example app's `backend` selects every version)
    apply(mesh.cluster, ns.name, [_version_service("v1"), _version_service("v2")])
    wait_synced(mesh, ns.name, 4, timeout=120)
    try:
        yield ns.name
    finally:
        ns.delete()


def _version_service(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"backend-{version}"},
        "spec": {
            "selector": {"app": "backend", "version": version},
            "ports": [{"name": "http", "port": 8080, "targetPort": 8080}],
        },
    }


def _route(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "backend", "port": 8080}], "rules": rules},
    }


def _ours(body: dict[str, Any]) -> dict[str, Any] | None:
    for parent in (body.get("status") or {}).get("parents") or []:
        if parent.get("controllerName") == CONTROLLER:
            return dict(parent)
    return None


def apply_route(mesh: Mesh, ns: str, name: str, rules: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Apply an HTTPRoute on Service backend and wait until Meshwork's status entry is for this generation and every
    affected sidecar applied it. Returns that entry's conditions by type."""
    apply(mesh.cluster, ns, [_route(name, rules)])

    def applied() -> dict[str, dict[str, Any]] | None:
        body = get_json(mesh.cluster, "httproutes.gateway.networking.k8s.io", name, "-n", ns)
        parent = _ours(body)
        if parent is None:
            return None
        conditions = {c["type"]: c for c in parent.get("conditions") or []}
        generation = body["metadata"]["generation"]
        if all(c.get("observedGeneration") == generation for c in conditions.values()) and (
            conditions.get("meshwork.io/Applied", {}).get("status") == "True"
        ):
            return conditions
        return None

    return wait(f"HTTPRoute {ns}/{name} applied by every affected sidecar", applied, 90, interval=1)


def delete_route(mesh: Mesh, ns: str, name: str) -> None:
    mesh.cluster.kubectl(
        "delete", "httproutes.gateway.networking.k8s.io", name, "-n", ns, "--wait=true", "--timeout=60s"
    )
    wait(
        "round robin over v1 and v2 again after the route is deleted",
        lambda: set(_served(_get(mesh, ns, "/anything", 20))) == {"backend-v1", "backend-v2"},
        60,
        interval=2,
    )


def _get(mesh: Mesh, ns: str, path: str, n: int = 1, **kw: Any) -> list[Reply]:
    return call(mesh.cluster, ns, "deploy/frontend", f"{BACKEND}{path}", n, **kw)


def _served(replies: list[Reply]) -> Counter[str]:
    return Counter(r.served_by for r in replies if r.status == 200)


def test_a_route_timeout_answers_504_from_the_callers_sidecar_for_a_slow_backend_and_200_for_a_fast_one(
    mesh: Mesh, shop: str
) -> None:
    slow = {"x-echo-delay-ms": "2500"}
    assert [r.status for r in _get(mesh, shop, "/slow", 1, headers=slow, timeout=10)] == [200]  # no timeout yet
    conditions = apply_route(
        mesh, shop, "timeouts", [{"name": "bounded", "backendRefs": [{"name": "backend", "port": 8080}],
                                  "timeouts": {"request": "1s"}}],
    )  # fmt: skip
    assert conditions["Accepted"]["status"] == "True", conditions
    timed_out = _get(mesh, shop, "/slow", 3, headers=slow, timeout=10)
    assert [r.status for r in timed_out] == [504] * 3, timed_out
    assert all(r.served_by == "" for r in timed_out), timed_out  # the caller's sidecar answered
    fast = _get(mesh, shop, "/fast", 5, headers={"x-echo-delay-ms": "100"}, timeout=10)
    assert [r.status for r in fast] == [200] * 5, fast
    delete_route(mesh, shop, "timeouts")
    assert [r.status for r in _get(mesh, shop, "/slow", 1, headers=slow, timeout=10)] == [200]


def _seen_by(mesh: Mesh, ns: str, selector: str) -> list[str]:
    """The paths the app containers of ``selector`` served (echo's /echo-requests, asked on the pod's loopback)."""
    script = "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:8080/echo-requests',timeout=5).read().decode())"
    seen: list[str] = []
    for p in pods(mesh.cluster, ns, selector):
        out = mesh.cluster.kubectl("exec", "-n", ns, p["metadata"]["name"], "-c", "app", "--", "python3", "-c", script)
        seen += json.loads(out)["paths"]
    return seen


def test_a_request_mirror_copies_v1s_traffic_to_v2_while_the_caller_only_sees_v1(mesh: Mesh, shop: str) -> None:
    conditions = apply_route(
        mesh,
        shop,
        "mirror",
        [
            {
                "name": "shadow-v2",
                "backendRefs": [{"name": "backend-v1", "port": 8080}],
                "filters": [
                    {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "backend-v2", "port": 8080}}}
                ],
            }
        ],
    )
    assert conditions["ResolvedRefs"]["status"] == "True", conditions
    marks = [f"/mirrored-{uuid.uuid4().hex[:8]}" for _ in range(10)]
    replies = [r for m in marks for r in _get(mesh, shop, m)]
    assert [(r.status, r.served_by) for r in replies] == [(200, "backend-v1")] * 10, replies
    # the copies are sent beside the request (their answers dropped): v2 has them all, shortly
    wait("every mirrored request seen by backend-v2", lambda: set(marks) <= set(_seen_by(mesh, shop, "version=v2")), 30)
    assert set(marks) <= set(_seen_by(mesh, shop, "version=v1"))  # and v1 served each
    delete_route(mesh, shop, "mirror")


#: Runs in the frontend's app container: one request with a method and headers; prints status and headers as JSON.
PREFLIGHT = textwrap.dedent(
    """
    import json, sys, urllib.error, urllib.request
    url, method, headers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    req = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            status, h = r.status, r.headers
    except urllib.error.HTTPError as e:
        status, h = e.code, e.headers
    print(json.dumps([status, {k.lower(): v for k, v in h.items()}]))
    """
)


def _request(mesh: Mesh, ns: str, method: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    out = mesh.cluster.kubectl(
        "exec", "-n", ns, "deploy/frontend", "-c", "app", "--", "python3", "-c", PREFLIGHT, f"{BACKEND}/cart",
        method, json.dumps(headers),
    )  # fmt: skip
    status, got = json.loads(out)
    return int(status), dict(got)


def test_a_cors_filter_answers_a_preflight_of_an_allowed_origin_and_gives_a_disallowed_one_no_allow_headers(
    mesh: Mesh, shop: str
) -> None:
    cors = {
        "allowOrigins": ["https://shop.example"],
        "allowMethods": ["GET", "POST"],
        "allowHeaders": ["x-cart-token"],
        "exposeHeaders": ["x-served-by"],
        "maxAge": 600,
    }
    apply_route(
        mesh, shop, "cors",
        [{"name": "cors", "backendRefs": [{"name": "backend", "port": 8080}],
          "filters": [{"type": "CORS", "cors": cors}]}],
    )  # fmt: skip
    ask = {"access-control-request-method": "POST", "access-control-request-headers": "x-cart-token"}
    status, allowed = _request(mesh, shop, "OPTIONS", {"origin": "https://shop.example", **ask})
    assert status == 200, allowed
    assert allowed.get("access-control-allow-origin") == "https://shop.example", allowed
    assert {m.strip() for m in allowed.get("access-control-allow-methods", "").split(",")} == {"GET", "POST"}, allowed
    assert allowed.get("access-control-allow-headers", "").lower() == "x-cart-token", allowed
    assert allowed.get("access-control-max-age") == "600", allowed
    assert "x-served-by" not in allowed, allowed  # the caller's sidecar answered the preflight, not a backend
    status, refused = _request(mesh, shop, "OPTIONS", {"origin": "https://evil.example", **ask})
    assert not [h for h in refused if h.startswith("access-control-allow-")], (status, refused)
    # an actual request of the allowed origin carries the allow and expose headers
    status, simple = _request(mesh, shop, "GET", {"origin": "https://shop.example"})
    assert status == 200 and simple.get("access-control-allow-origin") == "https://shop.example", simple
    assert simple.get("access-control-expose-headers") == "x-served-by", simple
    mesh.cluster.kubectl("delete", "httproutes.gateway.networking.k8s.io", "cors", "-n", shop, "--timeout=60s")
    wait(
        "no CORS answer after the route is deleted",
        lambda: (
            "access-control-allow-origin"
            not in _request(mesh, shop, "OPTIONS", {"origin": "https://shop.example", **ask})[1]
        ),
        60,
        interval=2,
    )


def test_route_status_shows_a_missing_backend_as_backend_not_found_and_a_good_route_resolved(
    mesh: Mesh, shop: str
) -> None:
    broken = apply_route(
        mesh, shop, "status",
        [{"name": "split", "backendRefs": [{"name": "backend-v1", "port": 8080, "weight": 1},
                                           {"name": "backend-v3", "port": 8080, "weight": 1}]}],
    )  # fmt: skip
    assert broken["Accepted"]["status"] == "True", broken
    assert (broken["ResolvedRefs"]["status"], broken["ResolvedRefs"]["reason"]) == ("False", "BackendNotFound")
    assert "backend-v3" in broken["ResolvedRefs"]["message"], broken
    answers = Counter((r.status, r.served_by) for r in _get(mesh, shop, "/anything", 40))
    # the missing backend's half of the weight is answered 500 by the caller's sidecar; v1 serves the rest
    assert set(answers) == {(200, "backend-v1"), (500, "")}, answers
    assert answers[(500, "")] >= 8, answers  # binomial(40, 0.5) >= 8 with probability > 0.9999
    good = apply_route(mesh, shop, "status", [{"name": "split", "backendRefs": [{"name": "backend-v1", "port": 8080}]}])
    assert {t: (c["status"], c["reason"]) for t, c in good.items()} == {
        "Accepted": ("True", "Accepted"),
        "ResolvedRefs": ("True", "ResolvedRefs"),
        "meshwork.io/Applied": ("True", "Applied"),
    }, good
    assert _served(_get(mesh, shop, "/anything", 20)) == Counter({"backend-v1": 20})
    delete_route(mesh, shop, "status")
