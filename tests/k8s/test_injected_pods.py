"""Every injected golden pod is a pod a real kube-apiserver (v1.35) accepts and stores as injected: the
injector's output is valid Kubernetes (native-sidecar fields, probes, security contexts, projected token)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

GOLDEN = Path(__file__).parents[1] / "golden" / "inject"
INJECTED = sorted(p.parent.name for p in GOLDEN.glob("*/output.yaml") if "pod" in (yaml.safe_load(p.read_text()) or {}))


def test_there_are_injected_goldens_to_check() -> None:
    assert len(INJECTED) >= 20


@pytest.mark.parametrize("case", INJECTED)
def test_the_api_server_stores_the_injected_pod_with_one_proxy_and_one_capture_container(
    k8s_api_client: client.ApiClient, namespace: str, case: str
) -> None:
    pod: dict[str, Any] = yaml.safe_load((GOLDEN / case / "output.yaml").read_text())["pod"]
    pod["metadata"]["namespace"] = namespace
    created = client.CoreV1Api(k8s_api_client).create_namespaced_pod(namespace, pod)
    stored = k8s_api_client.sanitize_for_serialization(created)
    names = [c["name"] for c in stored["spec"].get("initContainers", []) + stored["spec"]["containers"]]
    assert names.count("meshwork-proxy") == 1
    assert names.count("meshwork-init") == 1
    proxy = next(
        c
        for c in stored["spec"].get("initContainers", []) + stored["spec"]["containers"]
        if c["name"] == "meshwork-proxy"
    )
    mode = "classic" if proxy in stored["spec"]["containers"] else "native"
    assert (proxy.get("restartPolicy") == "Always") == (mode == "native")
    assert stored["metadata"]["annotations"]["meshwork.io/status"].startswith(f'{{"mode":"{mode}"')
