"""pytest fixtures of the cluster tier (marker ``cluster``): one real single-node cluster per test session.

Re-export them from a conftest (``from mesh_operator.testing.pytest_cluster import cluster, cluster_namespace``).
When the machine cannot run the cluster (not root, binaries or Debian packages missing) the tier is skipped with the
reason shown, except in CI (``CI=true``), where it is required and the run fails loudly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from mesh_operator.testing.cluster import Cluster, ClusterError, ClusterUnavailable, find_cluster_binaries
from mesh_operator.testing.existing_cluster import KUBECONFIG_ENV, ExistingCluster, existing_kubeconfig


def _unavailable(problem: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the cluster tier is required in CI (CI=true) but cannot run: {problem}", pytrace=False)
    pytest.skip(f"cluster tier skipped: {problem}")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The session's cluster: up once (egress guard checked first), torn down and the host cleaned at the end.

    With ``MESHWORK_E2E_KUBECONFIG`` set, an existing cluster (kind, ...) instead, used as it is and left running
    (mesh_operator.testing.existing_cluster)."""
    kubeconfig = existing_kubeconfig()
    if kubeconfig is not None:
        try:
            existing = ExistingCluster(kubeconfig).up()
        except ClusterError as err:  # the user asked for this cluster: never a skip
            pytest.fail(f"{KUBECONFIG_ENV}={kubeconfig}: {err}", pytrace=False)
        yield existing
        return
    try:
        instance = Cluster(find_cluster_binaries())
    except ClusterUnavailable as err:
        _unavailable(str(err))
        raise  # unreachable: skip/fail raise
    try:
        instance.up()
    except ClusterUnavailable as err:
        _unavailable(str(err))
    try:
        yield instance
    finally:
        problems = instance.down()
        if problems:
            pytest.fail(f"cluster teardown left the host unclean: {problems}", pytrace=False)


@pytest.fixture
def cluster_namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace (its default ServiceAccount exists), deleted after the test without waiting."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=60s")
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
