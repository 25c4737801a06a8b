"""Fixtures shared by tests/ and e2e/. The cluster is host-global (one per machine, behind a lock): tests/cluster
and e2e/ must share one session instance, so the fixtures are defined here once, not in each folder's conftest."""

from __future__ import annotations

import pytest

from mesh_operator.testing.cluster import Cluster, ClusterUnavailable
from mesh_operator.testing.existing_cluster import ExistingCluster, existing_images
from mesh_operator.testing.pytest_cluster import cluster, cluster_namespace
from tests.cluster.helpers import import_images

__all__ = ["cluster", "cluster_namespace"]


@pytest.fixture(scope="session")
def images(cluster: Cluster) -> dict[str, str]:
    """control-plane and sidecar from `make images`, imported into the cluster; name -> image reference.
    On an existing cluster (``MESHWORK_E2E_KUBECONFIG``): the images it already has (``MESHWORK_E2E_IMAGES``)."""
    if isinstance(cluster, ExistingCluster):
        try:
            return existing_images()
        except ClusterUnavailable as err:
            pytest.fail(str(err), pytrace=False)
    return import_images(cluster)
