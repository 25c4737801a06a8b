"""The cluster tier: a real single-node Kubernetes where pods run (kubelet, containerd, runc, CNI, kube-proxy).

Every test in this folder gets the `cluster` marker. Skipped with the reason shown where the machine cannot run it;
required in CI (`CI=true`). See docs/cluster-test-tier.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_operator.testing.cluster import Cluster
from mesh_operator.testing.pytest_cluster import cluster, cluster_namespace
from tests.cluster.helpers import import_images

__all__ = ["cluster", "cluster_namespace"]

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def images(cluster: Cluster) -> dict[str, str]:
    """control-plane and sidecar from `make images`, imported into the cluster; name -> image reference."""
    return import_images(cluster)
