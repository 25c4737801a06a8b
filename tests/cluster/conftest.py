"""The cluster tier: a real single-node Kubernetes where pods run (kubelet, containerd, runc, CNI, kube-proxy).

Every test in this folder gets the `cluster` marker. Skipped with the reason shown where the machine cannot run it;
required in CI (`CI=true`). See docs/cluster-test-tier.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_operator.testing.existing_cluster import KUBECONFIG_ENV, existing_kubeconfig

# The fixtures `cluster`, `cluster_namespace` and `images` live in the repository's root conftest.py (shared with e2e/).

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    existing = existing_kubeconfig()
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.cluster)
            if existing is not None:  # these test the project's own cluster (guard, host, containerd)
                reason = f"tests/cluster skipped: {KUBECONFIG_ENV}={existing} points e2e/ at an existing cluster"
                item.add_marker(pytest.mark.skip(reason=reason))
