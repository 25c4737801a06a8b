"""`helm install` of charts/meshwork on the real cluster, with a stand-in control-plane process.

The operator's entry point does not exist yet (issue 9), so the chart's container command is overridden with a
small Python process in the real control-plane image that serves the chart's probe paths (/healthz, /readyz) on the
health port. What this proves is the chart's, not the operator's: the CRDs install and are served, the Mesh hook is
accepted by the CRD schema, the RBAC objects are valid, the pod starts from the image under the chart's
securityContext (non-root, read-only root filesystem, all capabilities dropped) and passes the kubelet's probes, the
Service gets the pod as endpoint, and `helm uninstall` removes everything but the CRDs (kept by design).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from mesh_operator.testing import cache_dir
from mesh_operator.testing.binaries import k8s_version
from mesh_operator.testing.cluster import Cluster

CHART = Path(__file__).resolve().parents[2] / "charts" / "meshwork"

STAND_IN = textwrap.dedent(
    """
    import http.server
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.path in ("/healthz", "/readyz")
            self.send_response(200 if ok else 404); self.send_header("Content-Length", "0"); self.end_headers()
        def log_message(self, *a): pass
    http.server.HTTPServer(("", 15021), H).serve_forever()
    """
)


def _helm(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    helm = cache_dir() / k8s_version() / "helm"
    if not os.access(helm, os.X_OK):
        pytest.fail(f"helm missing at {helm}: run `make k8s-binaries`", pytrace=False)
    return subprocess.run(
        [str(helm), f"--kubeconfig={cluster.kubeconfig_path}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_helm_install_runs_the_control_plane_pod_ready_and_uninstall_keeps_only_the_crds(
    cluster: Cluster, images: dict[str, str], tmp_path: Path
) -> None:
    image = images["control-plane"]
    values = tmp_path / "values.yaml"
    values.write_text(
        json.dumps(
            {
                "controlPlane": {
                    "image": {"repository": image.rsplit(":", 1)[0], "tag": image.rsplit(":", 1)[1]},
                    "command": ["python3", "-c", STAND_IN],
                }
            }
        )
    )
    ns = "meshwork-system"
    done = _helm(
        cluster, "install", "meshwork", str(CHART), "-n", ns, "--create-namespace", "-f", str(values),
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        deployment = json.loads(cluster.kubectl("get", "deployment", "meshwork-control-plane", "-n", ns, "-o", "json"))
        assert deployment["status"]["readyReplicas"] == 1
        pod = json.loads(
            cluster.kubectl("get", "pods", "-n", ns, "-l", "app.kubernetes.io/component=control-plane", "-o", "json")
        )["items"][0]
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] is True
        assert status["restartCount"] == 0
        selector = "kubernetes.io/service-name=meshwork-control-plane"
        slices = json.loads(cluster.kubectl("get", "endpointslices", "-n", ns, "-l", selector, "-o", "json"))["items"]
        addresses = [a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]]
        assert addresses == [pod["status"]["podIP"]]
        mesh = json.loads(cluster.kubectl("get", "mesh", "default", "-o", "json"))
        assert mesh["spec"]["mtls"]["mode"] == "Strict"
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            cluster.kubectl("get", kind, "meshwork-control-plane")
    finally:
        uninstall = _helm(cluster, "uninstall", "meshwork", "-n", ns, "--wait", "--timeout", "120s")
    assert uninstall.returncode == 0, uninstall.stderr
    left = cluster.kubectl("get", "deployment,service,serviceaccount,configmap,role", "-n", ns, "-o", "name")
    assert "meshwork-control-plane" not in left, left
    assert "meshwork-control-plane" not in cluster.kubectl("get", "clusterrole", "-o", "name")
    crds = cluster.kubectl("get", "crd", "-o", "name")
    assert "customresourcedefinition.apiextensions.k8s.io/meshes.meshwork.io" in crds  # kept by design
    cluster.kubectl("delete", "mesh", "default", "--ignore-not-found")  # a hook resource: helm leaves it too
