"""The images `make images` builds, run as pods on the real cluster: what a user of the chart gets."""

from __future__ import annotations

from mesh_operator.testing.cluster import Cluster
from tests.cluster.helpers import run_pod


def test_the_sidecar_image_runs_envoy_from_the_wheel_as_uid_1337(
    cluster: Cluster, cluster_namespace: str, images: dict[str, str]
) -> None:
    phase, logs = run_pod(
        cluster,
        cluster_namespace,
        "envoy-version",
        images["sidecar"],
        ["/bin/sh", "-c", "envoy --version && id -u"],
        securityContext={"runAsNonRoot": True},
    )
    assert phase == "Succeeded", logs
    assert "/1.40.0/" in logs, logs
    assert logs.strip().splitlines()[-1] == "1337"


def test_the_control_plane_image_imports_the_control_plane_as_a_non_root_user(
    cluster: Cluster, cluster_namespace: str, images: dict[str, str]
) -> None:
    script = "import os, mesh_operator, xds_server, meshctl; print(mesh_operator.__name__, os.getuid())"
    phase, logs = run_pod(
        cluster,
        cluster_namespace,
        "import-control-plane",
        images["control-plane"],
        ["python3", "-c", script],
        securityContext={"runAsNonRoot": True},
    )
    assert phase == "Succeeded", logs
    assert logs.strip() == "mesh_operator 65532"
