"""``meshctl status`` and ``meshctl proxy-config`` against a cluster: policy status from the API, the proxy table
and config dump from the control plane."""

from __future__ import annotations

import json

import pytest
import yaml

from mesh_operator.testing import TestControlPlane
from mesh_operator.testing.kubemesh import KubeMesh
from meshctl.cli import main
from tests.k8s.operator_support import fully_applied, kube_mesh

__all__ = ["kube_mesh"]


def test_meshctl_reads_policy_status_from_the_cluster_and_the_proxy_table_from_the_control_plane(
    kube_mesh: KubeMesh, k8s_control_plane: TestControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    mesh = kube_mesh
    mesh.pod("caller", service_account="caller", upstreams=["backend"], serves=False)
    mesh.pod("backend-1", service_account="backend")
    mesh.service("backend", ["backend-1"])
    op = mesh.start_operator()
    mesh.wait_connected(op)
    mesh.apply(
        {
            "apiVersion": "meshwork.io/v1alpha1",
            "kind": "TrafficPolicy",
            "metadata": {"name": "backend"},
            "spec": {"targetRef": {"name": "backend"}, "timeouts": {"request": "2s"}},
        }
    )
    mesh.wait_status("TrafficPolicy", "backend", fully_applied)
    kubeconfig = str(k8s_control_plane.kubeconfig_path)
    admin = f"http://127.0.0.1:{op.admin_port}"
    capsys.readouterr()

    assert main(["status", "--kubeconfig", kubeconfig, "-n", mesh.namespace, "--admin", admin, "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    receipt = doc["policies"][f"TrafficPolicy/{mesh.namespace}/backend"]
    assert receipt["accepted"]["status"] == "True"
    assert (receipt["applied"], receipt["proxies"]) == (1, 1)
    assert receipt["observedGeneration"] == receipt["generation"]
    states = {r["proxy"]: r["state"] for r in doc["proxies"]}
    assert states == {f"{mesh.namespace}/caller": "SYNCED", f"{mesh.namespace}/backend-1": "SYNCED"}

    assert main(["status", "--kubeconfig", kubeconfig, "-n", mesh.namespace, "--admin", admin]) == 0
    out = capsys.readouterr().out
    assert f"TrafficPolicy/{mesh.namespace}/backend" in out and "1/1" in out

    # Without --admin the proxy table is read through the API server's service proxy; with no control-plane
    # Service here, meshctl still shows the policies and says why the proxy table is missing.
    assert main(["status", "--kubeconfig", kubeconfig, "-n", mesh.namespace, "-o", "yaml"]) == 0
    captured = capsys.readouterr()
    assert "proxy table unavailable" in captured.err and "meshwork-system/meshwork-controller:admin" in captured.err
    assert f"TrafficPolicy/{mesh.namespace}/backend" in yaml.safe_load(captured.out)["policies"]

    argv = ["proxy-config", "caller", "--kubeconfig", kubeconfig, "-n", mesh.namespace, "--admin", admin]
    assert main([*argv, "--type", "clusters", "-o", "json"]) == 0
    dump = json.loads(capsys.readouterr().out)
    names = [item["name"] for group in dump["resources"].values() for item in group["items"]]
    assert any("backend" in n for n in names), names
