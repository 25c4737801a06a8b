"""e2e: Meshwork's user stories through real pods on the real single-node cluster (marker ``cluster``).

One module per story, each in its own namespace. The session installs the chart once (``mesh``) with the images of
`make images`; the Helm story (``test_helm.py``) installs, upgrades and uninstalls its own release before it.
Skipped with the reason shown where the machine cannot run the cluster; required in CI (``CI=true``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.kit import Mesh, install_mesh, uninstall_mesh
from mesh_operator.testing.cluster import Cluster

# `cluster`, `cluster_namespace` and `images` come from the repository's root conftest.py (shared with tests/cluster).

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.cluster)
    # The Helm story installs and uninstalls its own release: it runs first of e2e/, before the session's release.
    # The HA upgrade story upgrades the session's release to two replicas and back: it runs last.
    slots = [i for i, item in enumerate(items) if HERE in item.path.resolve().parents]
    order = {"test_helm.py": 0, "test_ha_upgrade.py": 2}
    ordered = sorted((items[i] for i in slots), key=lambda item: order.get(item.path.name, 1))
    for i, item in zip(slots, ordered, strict=True):
        items[i] = item


@pytest.fixture(scope="session")
def mesh(cluster: Cluster, images: dict[str, str]) -> Iterator[Mesh]:
    """Meshwork installed with `helm install` (the real control-plane image), Ready."""
    m = install_mesh(cluster, images)
    try:
        yield m
    finally:
        uninstall_mesh(cluster)
