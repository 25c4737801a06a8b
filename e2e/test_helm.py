"""Story: an operator installs Meshwork with Helm, changes a value, and removes it.

`helm install` with the real control-plane image: the pod becomes Ready (its readiness is the control plane's own
`/readyz`: watches listed, first translation published) and the control plane sets the webhooks' caBundle, which the
chart does not render. `helm upgrade` with a changed value rolls the pod (the settings' checksum is a pod annotation).
`helm uninstall` removes what the release installed; what stays, by design: the CRDs (and so every policy), the
Mesh `default` (a hook resource: Helm never deletes hooks), and what the control plane created at run time (the CA
Secret, so a reinstall keeps the mesh's root; the root CA ConfigMaps in injected namespaces).
"""

from __future__ import annotations

from pathlib import Path

from e2e.kit import CHART, CP_SELECTOR, DEPLOYMENT, NS, RELEASE, get_json, helm, values, wait, write_values
from mesh_operator.testing.cluster import Cluster


def _ready_pods(cluster: Cluster) -> list[str]:
    items = get_json(cluster, "pods", "-n", NS, "-l", CP_SELECTOR)["items"]
    return [
        p["metadata"]["name"]
        for p in items
        if not p["metadata"].get("deletionTimestamp")
        and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])
        and p["status"].get("containerStatuses")
    ]


def test_helm_install_runs_the_real_control_plane_ready_upgrade_rolls_it_and_uninstall_keeps_only_the_crds(
    cluster: Cluster, images: dict[str, str], tmp_path: Path
) -> None:
    first = write_values(tmp_path, values(images))
    done = helm(
        cluster, "install", RELEASE, str(CHART), "-n", NS, "--create-namespace", "-f", str(first),
        "--wait", "--timeout", "240s",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr + cluster.kubectl("logs", "-n", NS, "-l", CP_SELECTOR)
    try:
        (pod,) = _ready_pods(cluster)
        container = get_json(cluster, "pod", pod, "-n", NS)["spec"]["containers"][0]
        assert container["image"] == images["control-plane"]
        assert container["command"] == ["python3", "-m", "mesh_operator"]  # the chart's default: the real operator
        logs = cluster.kubectl("logs", "-n", NS, pod)
        assert "initial LIST complete" in logs, logs[-3000:]
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            wait(
                f"{kind} caBundle set by the control plane",
                lambda kind=kind: all(
                    h["clientConfig"].get("caBundle") for h in get_json(cluster, kind, DEPLOYMENT)["webhooks"]
                ),
                60,
            )
        secret = get_json(cluster, "secret", "meshwork-ca", "-n", NS)
        assert set(secret["data"]) >= {"ca-cert.pem", "ca-key.pem"}

        changed = write_values(tmp_path, values(images, logLevel="debug"))
        done = helm(
            cluster, "upgrade", RELEASE, str(CHART), "-n", NS, "-f", str(changed), "--wait", "--timeout", "240s"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        rolled = wait(
            "the upgrade's pod Ready and the old one gone",
            lambda: [p for p in _ready_pods(cluster) if p != pod] if pod not in _ready_pods(cluster) else None,
            120,
        )
        assert len(rolled) == 1
        config = get_json(cluster, "configmap", DEPLOYMENT, "-n", NS)["data"]["config.yaml"]
        assert "logLevel: debug" in config
        assert get_json(cluster, "deployment", DEPLOYMENT, "-n", NS)["metadata"]["generation"] == 2
    finally:
        done = helm(cluster, "uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "120s")
    assert done.returncode == 0, done.stdout + done.stderr
    for kind, name, scope in (
        ("deployment", DEPLOYMENT, NS),
        ("service", DEPLOYMENT, NS),
        ("serviceaccount", DEPLOYMENT, NS),
        ("configmap", DEPLOYMENT, NS),
        ("role", DEPLOYMENT, NS),
        ("clusterrole", DEPLOYMENT, None),
        ("clusterrolebinding", DEPLOYMENT, None),
        ("validatingwebhookconfiguration", DEPLOYMENT, None),
        ("mutatingwebhookconfiguration", DEPLOYMENT, None),
    ):
        where = ["-n", scope] if scope else []
        out = cluster.kubectl("get", kind, name, *where, "--ignore-not-found", "-o", "name")
        assert out.strip() == "", f"{kind} {name} left after uninstall"
    wait("the control-plane pods gone", lambda: not get_json(cluster, "pods", "-n", NS, "-l", CP_SELECTOR)["items"], 60)
    crds = cluster.kubectl("get", "crd", "-o", "name")
    assert "trafficpolicies.meshwork.io" in crds and "accesspolicies.meshwork.io" in crds  # kept, by design
