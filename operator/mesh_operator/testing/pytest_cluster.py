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

from mesh_operator.testing.cluster import Cluster, ClusterUnavailable, find_cluster_binaries


def _unavailable(problem: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the cluster tier is required in CI (CI=true) but cannot run: {problem}", pytrace=False)
    pytest.skip(f"cluster tier skipped: {problem}")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The session's cluster: up once (egress guard checked first), torn down and the host cleaned at the end."""
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
