"""The operator on a real kube-apiserver writes the global rate-limit service's configuration into a ConfigMap
(``--ratelimit-configmap``) from the policies, and keeps it current as they change: what the chart's
envoyproxy/ratelimit Deployment reads."""

from __future__ import annotations

from typing import Any

import yaml
from kubernetes import client
from kubernetes.client import ApiException

from mesh_operator.testing.kubemesh import KubeMesh, eventually
from tests.k8s.operator_support import OPERATOR_NAMESPACE, kube_mesh

__all__ = ["kube_mesh"]  # the fixture, imported for pytest


def _policy(requests: int) -> dict[str, Any]:
    descriptor = {"name": "everyone", "limit": {"requests": requests, "unit": "hour"}}
    return {
        "apiVersion": "meshwork.io/v1alpha1",
        "kind": "TrafficPolicy",
        "metadata": {"name": "backend"},
        "spec": {
            "targetRef": {"name": "backend"},
            "rules": [
                {
                    "name": "limited",
                    "matches": [{"path": {"type": "PathPrefix", "value": "/limited"}}],
                    "rateLimit": {"global": {"descriptors": [descriptor]}},
                }
            ],
        },
    }


def test_the_operator_writes_the_rate_limit_services_configuration_into_a_configmap_and_keeps_it_current(
    kube_mesh: KubeMesh, k8s_api_client: client.ApiClient
) -> None:
    mesh = kube_mesh
    core = client.CoreV1Api(k8s_api_client)
    name = f"ratelimit-{mesh.namespace}"
    mesh.pod("backend-1", service_account="backend")
    mesh.service("backend", ["backend-1"])
    mesh.start_operator(extra_args=["--ratelimit-configmap", name])

    def limits() -> dict[str, int] | None:
        try:
            cm = core.read_namespaced_config_map(name, OPERATOR_NAMESPACE)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        doc = yaml.safe_load(cm.data["meshwork.yaml"])
        assert doc["domain"] == "meshwork"
        return {d["value"]: d["rate_limit"]["requests_per_unit"] for d in doc["descriptors"]}

    key = f"{mesh.namespace}.backend.limited.everyone"
    # No policy with a global limit yet: the ConfigMap exists with no descriptor (the service allows everything).
    assert eventually(lambda: limits() == {}, timeout=30)
    mesh.apply(_policy(6))
    assert eventually(lambda: limits() == {key: 6}, timeout=30)
    mesh.apply(_policy(3))
    assert eventually(lambda: limits() == {key: 3}, timeout=30)
    cm = core.read_namespaced_config_map(name, OPERATOR_NAMESPACE)
    assert cm.metadata.labels["app.kubernetes.io/managed-by"] == "meshwork"
    mesh.delete_policy("TrafficPolicy", "backend")
    assert eventually(lambda: limits() == {}, timeout=30)
