"""Story: a user deploys the example app (frontend, backend v1 x2, v2) as ordinary Deployments and Services into a
namespace labelled meshwork.io/inject=enabled. Every pod gets the sidecar at admission, becomes Ready (its kubelet
probes rewritten to the agent), and frontend calls http://backend:8080 with no mesh-specific code. The traffic is
mTLS between the sidecars: backend sees frontend's SPIFFE ID. A pod without a sidecar is refused (STRICT).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.kit import (
    Mesh,
    Namespace,
    account,
    apply,
    call,
    container_names,
    deploy_example_app,
    deployment,
    pods,
    rollout,
    wait_synced,
)


@pytest.fixture(scope="module")
def shop(mesh: Mesh) -> Iterator[str]:
    ns = Namespace(mesh.cluster, "shop")
    deploy_example_app(mesh, ns.name)
    try:
        yield ns.name
    finally:
        ns.delete()


def test_every_pod_of_the_example_app_is_injected_and_ready(mesh: Mesh, shop: str) -> None:
    found = pods(mesh.cluster, shop, "app in (frontend,backend)")
    assert len(found) == 4
    for pod in found:
        inits, containers = container_names(pod)
        assert inits == ["meshwork-init", "meshwork-proxy"], inits  # capture, then the native sidecar
        assert containers == ["app"]
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True", pod["metadata"]["name"]
        # the app's readiness probe now asks the agent, which asks the app on 127.0.0.1
        assert pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] == 15020
    wait_synced(mesh, shop, 4)


def test_frontend_calls_http_backend_8080_and_backend_sees_frontends_spiffe_id(mesh: Mesh, shop: str) -> None:
    replies = call(mesh.cluster, shop, "deploy/frontend", "http://127.0.0.1:8080/call/anything", n=12)
    assert [r.status for r in replies] == [200] * 12, replies[:3]
    served = set()
    for r in replies:
        upstream = r.json()["upstream"]
        served.add(upstream["service"])
        # the callee's sidecar forwards the caller's verified certificate (XFCC): mTLS between the sidecars
        assert f"URI=spiffe://cluster.local/ns/{shop}/sa/frontend" in upstream["client_cert"], upstream
    assert served <= {"backend-v1", "backend-v2"} and "backend-v1" in served, served


def test_plaintext_from_a_pod_without_a_sidecar_is_refused_in_strict_mode(mesh: Mesh, shop: str) -> None:
    image = mesh.images["control-plane"]
    outsider = deployment("outsider", image, app="outsider", annotations={"meshwork.io/inject": "false"})
    apply(mesh.cluster, shop, [account("outsider"), outsider])
    rollout(mesh.cluster, shop, "outsider")
    (pod,) = pods(mesh.cluster, shop, "app=outsider")
    assert container_names(pod) == ([], ["app"])
    # the client works: its own app answers it
    assert call(mesh.cluster, shop, "deploy/outsider", "http://127.0.0.1:8080/anything")[0].status == 200
    backend_ip = pods(mesh.cluster, shop, "app=backend")[0]["status"]["podIP"]
    for url in ("http://backend:8080/anything", f"http://{backend_ip}:8080/anything"):
        replies = call(mesh.cluster, shop, "deploy/outsider", url, n=3, timeout=3)
        # captured into the backend's sidecar, which speaks only mTLS: the plaintext request gets no answer
        assert [r.status for r in replies] == [0, 0, 0], (url, replies)
