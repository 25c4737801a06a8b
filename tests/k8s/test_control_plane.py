"""The test control plane itself: a real apiserver that enforces schemas, CEL and RBAC, and leaves nothing behind."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client

from mesh_operator.testing import DEFAULT_HELM_VERSION, DEFAULT_K8S_VERSION, Binaries, TestControlPlane
from tests.k8s.helpers import error_message, wait_established

REPO = Path(__file__).resolve().parents[2]

WIDGET_GROUP = "fixture.meshwork.test"


def _widget_crd(plural: str) -> dict[str, Any]:
    """A tiny namespaced CRD with a range, an enum and a CEL rule, to prove the apiserver enforces all three."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{WIDGET_GROUP}"},
        "spec": {
            "group": WIDGET_GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": plural.capitalize()[:-1]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["replicas"],
                                    "x-kubernetes-validations": [
                                        {"rule": "self.low <= self.high", "message": "low must not exceed high"}
                                    ],
                                    "properties": {
                                        "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                                        "mode": {"type": "string", "enum": ["fast", "safe"]},
                                        "low": {"type": "integer", "default": 0},
                                        "high": {"type": "integer", "default": 0},
                                    },
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def widget(k8s_api_client: client.ApiClient) -> tuple[str, str]:
    """Install the tiny CRD once; returns (kind, plural)."""
    plural = f"widgets{uuid.uuid4().hex[:6]}"
    body = _widget_crd(plural)
    client.ApiextensionsV1Api(k8s_api_client).create_custom_resource_definition(cast(Any, body))
    wait_established(k8s_api_client, body["metadata"]["name"])
    return body["spec"]["names"]["kind"], plural


def _create_widget(api: client.ApiClient, namespace: str, kind: str, plural: str, spec: dict[str, Any]) -> Any:
    body = {"apiVersion": f"{WIDGET_GROUP}/v1", "kind": kind, "metadata": {"name": "w"}, "spec": spec}
    return client.CustomObjectsApi(api).create_namespaced_custom_object(WIDGET_GROUP, "v1", namespace, plural, body)


def test_the_apiserver_is_the_version_we_built(k8s_control_plane: TestControlPlane) -> None:
    status, body = k8s_control_plane.get("/version")
    assert status == 200
    assert f'"gitVersion": "{DEFAULT_K8S_VERSION}"' in body.decode()


def test_a_valid_custom_object_is_stored_with_schema_defaults(
    k8s_api_client: client.ApiClient, namespace: str, widget: tuple[str, str]
) -> None:
    kind, plural = widget
    created = _create_widget(k8s_api_client, namespace, kind, plural, {"replicas": 3, "mode": "safe", "high": 2})
    assert created["spec"] == {"replicas": 3, "mode": "safe", "low": 0, "high": 2}


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"replicas": 11}, "spec.replicas", "less than or equal to 10"),
        ({"replicas": "three"}, "spec.replicas", "integer"),
        ({"replicas": 1, "mode": "reckless"}, "spec.mode", "supported values"),
        ({"mode": "safe"}, "spec.replicas", "Required value"),
        ({"replicas": 1, "low": 5, "high": 1}, "spec", "low must not exceed high"),
    ],
    ids=["out-of-range", "wrong-type", "unknown-enum", "missing-required", "cel-rule"],
)
def test_the_apiserver_rejects_an_invalid_custom_object_naming_the_field(
    k8s_api_client: client.ApiClient,
    namespace: str,
    widget: tuple[str, str],
    spec: dict[str, Any],
    field: str,
    words: str,
) -> None:
    kind, plural = widget
    with pytest.raises(client.ApiException) as caught:
        _create_widget(k8s_api_client, namespace, kind, plural, spec)
    assert caught.value.status == 422
    message = error_message(caught.value)
    assert re.search(rf"\b{re.escape(field)}: ", message), message
    assert words.lower() in message.lower(), message


def test_rbac_is_on_so_an_unbound_user_is_forbidden(k8s_api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_api_client)
    core.list_namespace()  # the admin (system:masters) may
    with pytest.raises(client.ApiException) as caught:
        core.list_namespace(_headers={"Impersonate-User": "somebody-without-bindings"})
    assert caught.value.status == 403
    assert "somebody-without-bindings" in error_message(caught.value)


def test_a_stopped_control_plane_leaves_no_process_and_no_directory(k8s_binaries: Binaries) -> None:
    plane = TestControlPlane(k8s_binaries).start()
    pids, workdir = plane.pids, plane.workdir
    assert set(pids) == {"etcd", "kube-apiserver"}
    assert workdir.is_dir()
    assert plane.kubeconfig_path.is_file()
    plane.stop()
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} still exists after stop()"
    assert not workdir.exists()
    plane.stop()  # idempotent


def test_the_python_helper_and_the_build_script_agree_on_versions() -> None:
    script = (REPO / "scripts" / "k8s" / "build-binaries.sh").read_text()
    assert f'K8S_VERSION="${{MESHWORK_K8S_VERSION:-{DEFAULT_K8S_VERSION}}}"' in script
    assert f'HELM_VERSION="${{MESHWORK_HELM_VERSION:-{DEFAULT_HELM_VERSION}}}"' in script


def test_helm_reaches_the_apiserver_through_the_written_kubeconfig(k8s_control_plane: TestControlPlane) -> None:
    helm = k8s_control_plane.binaries.helm
    if helm is None:
        reason = "helm not built: run `make k8s-binaries`"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(k8s_control_plane.workdir)}
    kubeconfig = f"--kubeconfig={k8s_control_plane.kubeconfig_path}"
    version = subprocess.run([helm, "version", "--short"], capture_output=True, text=True, env=env, check=True)
    assert version.stdout.startswith(DEFAULT_HELM_VERSION)
    listed = subprocess.run(
        [helm, "list", "--all-namespaces", "--output=json", kubeconfig],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "[]"
