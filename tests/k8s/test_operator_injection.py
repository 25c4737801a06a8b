"""The injection webhook, served by the operator as the chart runs it (``--config``, the chart's settings file),
registered with a real kube-apiserver (no pods run here: what the API server stores is what kubelet would run).

The webhook configuration is created with an empty caBundle (the chart renders none): the operator fills it in.
"""

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
from mesh_operator.testing.kubemesh import OperatorProcess, free_port
from mesh_operator.testing.localmesh import eventually
from tests.k8s.helpers import create_namespace

PROXY, CAPTURE = "meshwork-proxy", "meshwork-init"


class ConfiguredOperator(OperatorProcess):
    """``python -m mesh_operator --config FILE``: every port and name from the settings file."""

    def __init__(self, kubeconfig: Path, tmp: Path, config: dict[str, Any]) -> None:
        super().__init__(kubeconfig, tmp / "ca-unused", tmp / "operator.log", trust_domain="cluster.local")
        self.config_path = tmp / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.admin_port = config["ports"]["metrics"]
        self.webhook_port = config["ports"]["webhook"]

    def argv(self) -> list[str]:
        import sys

        return [
            sys.executable, "-m", "mesh_operator", "--kubeconfig", str(self.kubeconfig),
            "--config", str(self.config_path), "--listen-host", "127.0.0.1", "--identity", "op-config",
        ]  # fmt: skip


@pytest.fixture
def injecting(
    k8s_control_plane: TestControlPlane, k8s_api_client: client.ApiClient, tmp_path: Path
) -> Iterator[tuple[ConfiguredOperator, str, str]]:
    """The operator with its settings file, a MutatingWebhookConfiguration (caBundle empty, failurePolicy Ignore)
    for the pods labelled with this test's id, and a namespace labelled meshwork.io/inject=enabled."""
    test_id = uuid.uuid4().hex[:8]
    name = f"meshwork-inject-{test_id}"
    create_namespace(k8s_api_client, "meshwork-system")
    ns = create_namespace(k8s_api_client, f"inj-{test_id}")
    core = client.CoreV1Api(k8s_api_client)
    core.patch_namespace(ns, {"metadata": {"labels": {"meshwork.io/inject": "enabled"}}})
    ports = {"xds": free_port(), "webhook": free_port(), "metrics": free_port(), "health": free_port()}
    config = {
        "ports": {**ports, "identity": free_port()},
        "leaderElection": {"namespace": "meshwork-system", "leaseName": name, "leaseDurationSeconds": 15},
        "webhooks": {"service": "meshwork-control-plane", "validatingConfiguration": "", "mutatingConfiguration": name},
        "ca": {"secret": f"meshwork-ca-{test_id}", "external": False},
        "proxy": {"image": "localhost/meshwork/sidecar:test", "nativeSidecar": True},
    }
    op = ConfiguredOperator(k8s_control_plane.kubeconfig_path, tmp_path, config)
    body = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "inject.meshwork.io",
                "clientConfig": {"url": f"https://127.0.0.1:{ports['webhook']}/inject", "caBundle": ""},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                # This test's pods only, whatever their namespace (kube-system too: the operator must refuse it).
                "objectSelector": {"matchLabels": {"meshwork-test": test_id}},
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
                "reinvocationPolicy": "Never",
            }
        ],
    }
    admission: Any = client.AdmissionregistrationV1Api(k8s_api_client)
    admission.create_mutating_webhook_configuration(body)
    op.start(timeout=90)
    try:
        yield op, ns, test_id
    finally:
        op.stop()
        admission.delete_mutating_webhook_configuration(name)
        core.delete_namespace(ns)


def _pod(name: str, test_id: str, **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"meshwork-test": test_id, "app": "web"}, "annotations": annotations},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "localhost/echo:test",
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                }
            ]
        },
    }


def _names(pod: client.V1Pod) -> tuple[list[str], list[str]]:
    return [c.name for c in pod.spec.init_containers or []], [c.name for c in pod.spec.containers]


def _wait_ca_bundle(api: client.ApiClient, name: str) -> None:
    admission: Any = client.AdmissionregistrationV1Api(api)
    eventually(
        lambda: all(h.client_config.ca_bundle for h in admission.read_mutating_webhook_configuration(name).webhooks),
        timeout=30,
    )


def test_a_pod_created_in_a_labelled_namespace_is_stored_with_exactly_one_sidecar_and_one_capture_container(
    injecting: tuple[ConfiguredOperator, str, str], k8s_api_client: client.ApiClient
) -> None:
    op, ns, test_id = injecting
    core = client.CoreV1Api(k8s_api_client)
    # Empty here (the chart renders none); the operator sets it to the mesh's roots.
    _wait_ca_bundle(k8s_api_client, f"meshwork-inject-{test_id}")
    stored = core.create_namespaced_pod(ns, _pod("web", test_id))
    inits, containers = _names(stored)
    assert inits == [CAPTURE, PROXY], inits
    assert containers == ["app"]
    (proxy,) = [c for c in stored.spec.init_containers if c.name == PROXY]
    assert proxy.restart_policy == "Always"  # a native sidecar
    assert proxy.image == "localhost/meshwork/sidecar:test"  # from the settings file
    env = {e.name: e.value for e in proxy.env if e.value}
    assert env["MESHWORK_CONTROL_PLANE"] == f"meshwork-control-plane.meshwork-system.svc:{op_xds_port(op)}"
    assert env["MESHWORK_IDENTITY_URL"].startswith("https://meshwork-control-plane.meshwork-system.svc:")
    # the kubelet probe now goes to the agent (plaintext health port, never captured)
    assert stored.spec.containers[0].readiness_probe.http_get.port == 15020
    # the namespace got the mesh's roots for the agent's first request
    cm = eventually(lambda: _configmap(core, ns), timeout=30)
    assert "BEGIN CERTIFICATE" in cm.data["ca.pem"]


def op_xds_port(op: ConfiguredOperator) -> int:
    return int(yaml.safe_load(op.config_path.read_text())["ports"]["xds"])


def _configmap(core: client.CoreV1Api, ns: str) -> client.V1ConfigMap | None:
    try:
        return core.read_namespaced_config_map("meshwork-root-ca", ns)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


def test_an_injected_pod_again_a_pod_in_kube_system_and_one_annotated_false_are_not_injected(
    injecting: tuple[ConfiguredOperator, str, str], k8s_api_client: client.ApiClient
) -> None:
    op, ns, test_id = injecting
    core = client.CoreV1Api(k8s_api_client)
    _wait_ca_bundle(k8s_api_client, f"meshwork-inject-{test_id}")
    first = core.create_namespaced_pod(ns, _pod("web", test_id))
    # the stored, injected pod submitted again (as a copy): still one sidecar, one capture container
    again = k8s_api_client.sanitize_for_serialization(first)
    again["metadata"] = {
        "name": "web-again",
        "labels": first.metadata.labels,
        "annotations": first.metadata.annotations,
    }
    again.pop("status", None)
    again["spec"].pop("nodeName", None)
    stored = core.create_namespaced_pod(ns, again)
    inits, containers = _names(stored)
    assert inits.count(PROXY) == 1 and inits.count(CAPTURE) == 1, inits
    assert containers == ["app"]

    system = core.create_namespaced_pod("kube-system", _pod(f"web-{test_id}", test_id))
    try:
        assert _names(system) == ([], ["app"])
    finally:
        core.delete_namespaced_pod(f"web-{test_id}", "kube-system", grace_period_seconds=0)

    opted_out = core.create_namespaced_pod(ns, _pod("web-out", test_id, **{"meshwork.io/inject": "false"}))
    assert _names(opted_out) == ([], ["app"])
    # none of them is reported as missing its sidecar
    assert op.admin("/debug/injectionz")["pods"] == []


def test_with_the_webhook_down_and_failure_policy_ignore_pods_pass_uninjected_and_the_operator_reports_them(
    injecting: tuple[ConfiguredOperator, str, str], k8s_api_client: client.ApiClient
) -> None:
    op, ns, test_id = injecting
    core = client.CoreV1Api(k8s_api_client)
    _wait_ca_bundle(k8s_api_client, f"meshwork-inject-{test_id}")
    op.stop()  # the webhook is down
    stored = core.create_namespaced_pod(ns, _pod("missed", test_id))
    assert _names(stored) == ([], ["app"])  # failurePolicy Ignore let it through, uninjected
    op.start(timeout=90)

    def reported() -> dict[str, Any] | None:
        found = op.admin("/debug/injectionz")
        return found if found["meshwork_pods_missing_sidecar"] == 1 else None

    found = eventually(reported, timeout=30)
    assert found["pods"][0]["pod"] == f"{ns}/missed"
    events = eventually(
        lambda: core.list_namespaced_event(ns, field_selector="involvedObject.name=missed").items, timeout=30
    )
    (event,) = [e for e in events if e.reason == "SidecarMissing"]
    assert event.type == "Warning"
    assert "should carry the Meshwork sidecar" in event.message
    # a pod injected meanwhile is not reported
    core.create_namespaced_pod(ns, _pod("fine", test_id))
    assert json.dumps(op.admin("/debug/injectionz")).count("/fine") == 0
