"""Gateway API mesh routes in Kubernetes: the upstream v1.6.1 CRDs on a real kube-apiserver, the operator watching
HTTPRoutes and XMesh, Envoy stand-ins for the pods. Route status is written as the Gateway API specifies it (our
``status.parents[]`` entry, other controllers' entries kept) and the route steers real traffic."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client

from mesh_operator.api.gateway import CONTROLLER_NAME
from mesh_operator.testing import TestControlPlane
from mesh_operator.testing.kubemesh import KubeMesh, eventually
from mesh_operator.translate.gateway_status import SUPPORTED_FEATURES
from tests.k8s.helpers import REPO, wait_established
from tests.k8s.operator_support import kube_mesh

__all__ = ["kube_mesh"]

GROUP, VERSION = "gateway.networking.k8s.io", "v1"
FETCH = REPO / "scripts" / "gateway-api" / "fetch-crds.sh"
OTHER = {
    "parentRef": {"group": GROUP, "kind": "Gateway", "name": "edge"},
    "controllerName": "example.com/gateway-controller",
    "conditions": [
        {
            "type": "Accepted",
            "status": "True",
            "reason": "Accepted",
            "message": "theirs",
            "lastTransitionTime": "2026-11-30T00:00:00Z",
            "observedGeneration": 1,
        }
    ],
}


@pytest.fixture(scope="module")
def gateway_crds(k8s_control_plane: TestControlPlane, k8s_api_client: client.ApiClient) -> None:
    """Upstream's HTTPRoute/GRPCRoute/ReferenceGrant (standard channel) and XMesh (experimental) CRDs, installed."""
    done = subprocess.run(["bash", str(FETCH)], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        reason = f"scripts/gateway-api/fetch-crds.sh failed: {done.stderr[-500:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    cache = Path(done.stdout.strip().splitlines()[-1])
    wanted = {"standard": {"HTTPRoute", "GRPCRoute", "ReferenceGrant"}, "experimental": {"XMesh"}}
    ext = client.ApiextensionsV1Api(k8s_api_client)
    names = []
    for channel, kinds in wanted.items():
        for doc in yaml.safe_load_all((cache / f"{channel}.yaml").read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            if doc["spec"]["names"]["kind"] not in kinds:
                continue
            try:
                ext.create_custom_resource_definition(cast(Any, doc))
            except client.ApiException as err:
                if err.status != 409:
                    pytest.fail(f"the apiserver refused {doc['metadata']['name']}: {err.body}", pytrace=False)
            names.append(doc["metadata"]["name"])
    for name in names:
        wait_established(k8s_api_client, name)


def _ours(obj: dict[str, Any]) -> dict[str, Any] | None:
    for p in (obj.get("status") or {}).get("parents") or []:
        if p.get("controllerName") == CONTROLLER_NAME:
            return dict(p)
    return None


def _conds(parent: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in (parent or {}).get("conditions") or []}


def _wait(get: Any, check: Any, timeout: float) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj: dict[str, Any] = get()
        return obj if check(obj) else None

    try:
        found = eventually(probe, timeout=timeout, interval=0.3)
    except TimeoutError as e:
        raise AssertionError(f"status never matched: {get().get('status')}") from e
    assert found is not None
    return found


def _route(mesh: KubeMesh, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": mesh.namespace},
        "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "front", "port": 8080}], "rules": rules},
    }


def test_an_httproute_on_a_service_steers_traffic_and_gets_our_parent_status_beside_other_controllers(
    gateway_crds: None, kube_mesh: KubeMesh, k8s_api_client: client.ApiClient
) -> None:
    mesh = kube_mesh
    custom = client.CustomObjectsApi(k8s_api_client)
    mesh.pod("caller", service_account="caller", upstreams=["front"], serves=False)
    for name in ("front-1", "v1-1", "v2-1"):
        mesh.pod(name, service_account=name.split("-")[0])
    mesh.service("front", ["front-1"])
    mesh.service("v1", ["v1-1"])
    mesh.service("v2", ["v2-1"])
    rules = [
        {"backendRefs": [{"name": "v1", "port": 8080}]},
        {
            "matches": [{"headers": [{"name": "x-version", "value": "two"}]}],
            "filters": [
                {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": "x-r", "value": "2"}]}}
            ],
            "backendRefs": [{"name": "v2", "port": 8080}],
        },
    ]
    ns = mesh.namespace
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "httproutes", _route(mesh, "front", rules))
    # Another controller (a gateway) already reports on this route: its entry must survive our writes.
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, "httproutes", "front", {"status": {"parents": [OTHER]}}
    )
    op = mesh.start_operator()
    mesh.wait_connected(op)

    def get() -> dict[str, Any]:
        return dict(custom.get_namespaced_custom_object(GROUP, VERSION, ns, "httproutes", "front"))

    def applied(obj: dict[str, Any]) -> bool:
        c = _conds(_ours(obj))
        return c.get("Accepted") == ("True", "Accepted") and c.get("meshwork.io/Applied", ("",))[0] == "True"

    obj = _wait(get, applied, 60)
    assert obj is not None
    ours = _ours(obj)
    assert ours is not None
    assert ours["parentRef"] == {"group": "", "kind": "Service", "name": "front", "namespace": ns, "port": 8080}
    assert _conds(ours)["ResolvedRefs"] == ("True", "ResolvedRefs")
    assert all(c["observedGeneration"] == obj["metadata"]["generation"] for c in ours["conditions"])
    assert all(c["lastTransitionTime"] for c in ours["conditions"])
    assert OTHER in obj["status"]["parents"]  # theirs, exactly as written
    # The route is what callers of front get: its own instance never answers.
    mesh.get_until("caller", "front", "/a", lambda r: r.served_by == "v1-1")
    two = mesh.get("caller", "front", "/b", headers={"x-version": "two"})
    assert (two.served_by, two.headers.get("x-r")) == ("v2-1", "2")

    # A new generation pointing at a Service that does not exist: ResolvedRefs=False/BackendNotFound, and the
    # share of that backend answers 500 (as the Gateway API requires) instead of reaching anything.
    current = get()
    current["spec"]["rules"] = [{"backendRefs": [{"name": "ghost", "port": 8080}]}]
    custom.replace_namespaced_custom_object(GROUP, VERSION, ns, "httproutes", "front", current)

    def broken(o: dict[str, Any]) -> bool:
        ours = _ours(o)
        return (
            bool(ours)
            and _conds(ours).get("ResolvedRefs") == ("False", "BackendNotFound")
            and all(c["observedGeneration"] == o["metadata"]["generation"] for c in ours["conditions"])
        )

    obj = _wait(get, broken, 30)
    assert obj is not None and OTHER in obj["status"]["parents"]
    msg = {c["type"]: c["message"] for c in (_ours(obj) or {})["conditions"]}["ResolvedRefs"]
    assert "spec.rules[0].backendRefs[0]" in msg and "ghost" in msg
    mesh.get_until("caller", "front", "/a", lambda r: r.status == 500)


def test_an_xmesh_naming_our_controller_gets_accepted_and_the_sorted_supported_features(
    gateway_crds: None, kube_mesh: KubeMesh, k8s_api_client: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(k8s_api_client)
    group, version = "gateway.networking.x-k8s.io", "v1alpha1"
    name, foreign = f"meshwork-{kube_mesh.namespace}", f"other-{kube_mesh.namespace}"
    for n, controller in ((name, CONTROLLER_NAME), (foreign, "example.com/other-mesh")):
        body = {"apiVersion": f"{group}/{version}", "kind": "XMesh", "metadata": {"name": n}}
        custom.create_cluster_custom_object(group, version, "xmeshes", {**body, "spec": {"controllerName": controller}})
    kube_mesh.start_operator()

    def status() -> dict[str, Any] | None:
        s = custom.get_cluster_custom_object(group, version, "xmeshes", name).get("status") or {}
        return s if s.get("supportedFeatures") else None

    s = eventually(status, timeout=60, interval=0.3)
    assert s is not None
    names = [f["name"] for f in s["supportedFeatures"]]
    assert names == sorted(SUPPORTED_FEATURES) and "Mesh" in names
    assert {c["type"]: c["status"] for c in s["conditions"]} == {"Accepted": "True"}
    assert not (custom.get_cluster_custom_object(group, version, "xmeshes", foreign).get("status") or {}).get(
        "supportedFeatures"
    )
