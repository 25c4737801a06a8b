"""``meshctl check`` against a real kube-apiserver with the operator: CRDs at this release's version and schema,
webhook configurations whose caBundle must stay valid for 60 days, the control plane and its proxies; ``--pre``."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

import pytest
from kubernetes import client

from mesh_operator.testing import TestControlPlane
from mesh_operator.testing.kubemesh import KubeMesh
from meshctl.cli import main
from tests.k8s.operator_support import kube_mesh
from xds_server.ca import TrustBundle, create_root

__all__ = ["kube_mesh"]


def _webhook(api: client.ApiClient, name: str, label: str, bundle: bytes) -> None:
    key, _, value = label.partition("=")
    client.AdmissionregistrationV1Api(api).create_validating_webhook_configuration(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name, "labels": {key: value}},
            "webhooks": [
                {
                    "name": "validate.meshwork.io",
                    "clientConfig": {
                        "url": "https://127.0.0.1:9/validate",
                        "caBundle": base64.b64encode(bundle).decode(),
                    },
                    "rules": [],
                    "failurePolicy": "Ignore",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                }
            ],
        }
    )


def test_check_passes_crds_and_proxies_and_fails_a_webhook_ca_bundle_with_less_than_60_days(
    kube_mesh: KubeMesh,
    k8s_control_plane: TestControlPlane,
    k8s_api_client: client.ApiClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mesh = kube_mesh
    mesh.pod("caller", service_account="caller", upstreams=["backend"], serves=False)
    mesh.pod("backend-1", service_account="backend")
    mesh.service("backend", ["backend-1"])
    op = mesh.start_operator()
    mesh.wait_connected(op)
    label = f"meshwork.io/check-test={uuid.uuid4().hex[:8]}"
    suffix = mesh.namespace
    _webhook(k8s_api_client, f"meshwork-good-{suffix}", label, mesh.certs.bundle.to_pem())
    short = create_root("short.test", ttl=timedelta(days=30))
    _webhook(k8s_api_client, f"meshwork-short-{suffix}", label, TrustBundle.of(short.root).to_pem())
    argv = [
        "check",
        "--kubeconfig",
        str(k8s_control_plane.kubeconfig_path),
        "--admin",
        f"http://127.0.0.1:{op.admin_port}",
    ]
    argv += ["--webhook-selector", label, "-o", "json"]

    assert main(argv) == 1
    checks = json.loads(capsys.readouterr().out)["checks"]
    by = {(c["code"], c["subject"]): c for c in checks}
    crds = [c for c in checks if c["code"] == "crds"]
    assert len(crds) == 5 and all(c["level"] == "ok" for c in crds), crds
    assert by[("webhooks", f"meshwork-good-{suffix}/validate.meshwork.io")]["level"] == "ok"
    assert by[("webhooks", f"meshwork-short-{suffix}/validate.meshwork.io")]["level"] == "error"
    errors = [c for c in checks if c["level"] == "error"]
    assert [c["subject"] for c in errors] == [f"meshwork-short-{suffix}/validate.meshwork.io"], errors
    assert any(c["code"] == "proxies" and c["level"] == "ok" for c in checks)


def test_check_pre_passes_on_a_recent_api_server(
    k8s_control_plane: TestControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--pre", "--kubeconfig", str(k8s_control_plane.kubeconfig_path)]) == 0
    out = capsys.readouterr().out
    assert "api server: reachable, Kubernetes v1." in out


def test_check_pre_fails_when_a_meshwork_crd_exists_at_another_version(
    k8s_control_plane: TestControlPlane, k8s_api_client: client.ApiClient, capsys: pytest.CaptureFixture[str]
) -> None:
    ext = client.ApiextensionsV1Api(k8s_api_client)
    plural = f"relics{uuid.uuid4().hex[:6]}"
    name = f"{plural}.meshwork.io"
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    ext.create_custom_resource_definition(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {
                "group": "meshwork.io",
                "names": {"kind": "Relic", "plural": plural, "singular": plural[:-1], "listKind": "RelicList"},
                "scope": "Namespaced",
                "versions": [{"name": "v1beta9", "served": True, "storage": True, "schema": schema}],
            },
        }
    )
    try:
        assert main(["check", "--pre", "--kubeconfig", str(k8s_control_plane.kubeconfig_path)]) == 1
        out = capsys.readouterr().out
        assert f"[FAIL] pre {name}: exists without v1alpha1: remove it first" in out
    finally:
        ext.delete_custom_resource_definition(name)
