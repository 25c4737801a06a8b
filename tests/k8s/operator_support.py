"""Shared pieces of the operator tests: the example mesh as Kubernetes objects, fixtures, small readers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from mesh_operator.testing import TestControlPlane
from mesh_operator.testing.kubemesh import KubeMesh
from tests.k8s.helpers import REPO, Crd, create_namespace

EXAMPLES = REPO / "examples" / "mesh"
OPERATOR_NAMESPACE = "meshwork-system"


@pytest.fixture
def kube_mesh(
    k8s_control_plane: TestControlPlane,
    k8s_api_client: client.ApiClient,
    meshwork_crds: dict[str, Crd],
    tmp_path: Path,
) -> Iterator[KubeMesh]:
    """A fresh namespace with nothing in it yet, and the helpers to fill it (pods, services, an operator)."""
    create_namespace(k8s_api_client, OPERATOR_NAMESPACE)
    ns = create_namespace(k8s_api_client, f"op-{uuid.uuid4().hex[:8]}")
    with KubeMesh(k8s_api_client, k8s_control_plane.kubeconfig_path, tmp_path, namespace=ns) as mesh:
        yield mesh


def example_policies(namespace: str) -> list[dict[str, Any]]:
    """examples/mesh/*.yaml's policies, moved into ``namespace`` (service-account references too)."""
    docs = []
    for path in sorted(EXAMPLES.glob("backend-*.yaml")):
        text = path.read_text().replace("namespace: shop", f"namespace: {namespace}")
        docs.append(yaml.safe_load(text))
    return docs


def example_mesh(mesh: KubeMesh) -> None:
    """The example mesh's workloads: frontend -> backend (v1 x2, v2), loadgen and intruder calling in."""
    mesh.pod("frontend", service_account="frontend", labels={"app": "frontend"}, upstreams=["backend"])
    for name, version in (("backend-v1-a", "v1"), ("backend-v1-b", "v1"), ("backend-v2", "v2")):
        mesh.pod(name, service_account="backend", labels={"app": "backend", "version": version})
    mesh.pod("loadgen", service_account="loadgen", upstreams=["frontend", "backend"], serves=False)
    mesh.pod("intruder", service_account="intruder", upstreams=["backend"], serves=False)
    mesh.service("frontend", ["frontend"])
    mesh.service("backend", ["backend-v1-a", "backend-v1-b", "backend-v2"])


def conditions(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}


def fully_applied(obj: dict[str, Any]) -> bool:
    """Accepted, ResolvedRefs and Programmed True for the current generation, and every affected proxy ACKed."""
    status = obj.get("status") or {}
    proxies = status.get("proxies") or {}
    generation = obj["metadata"]["generation"]
    return (
        status.get("observedGeneration") == generation
        and all(c.get("observedGeneration") == generation for c in status.get("conditions") or [])
        and conditions(obj) == {"Accepted": "True", "ResolvedRefs": "True", "Programmed": "True"}
        and proxies.get("affected", 0) > 0
        and proxies.get("applied") == proxies.get("affected")
        and not proxies.get("rejected")
    )


def table(plane: TestControlPlane, path: str) -> dict[str, dict[str, Any]]:
    """What ``kubectl get`` shows: the server-side Table, rows by name."""
    status, body = plane.get(path, accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert status == 200, body
    doc = json.loads(body)
    names = [c["name"] for c in doc["columnDefinitions"]]
    return {row["cells"][0]: dict(zip(names, row["cells"], strict=True)) for row in doc["rows"]}
