"""The Kubernetes tier: a real kube-apiserver + etcd (no kubelet, no controllers), shared by the whole session.

Every test in this folder gets the `k8s` marker. When the binaries are missing the tier is skipped with the reason
shown, except in CI (`CI=true`), where it is required and the run fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client

from mesh_operator.testing import Binaries, BinariesMissingError, TestControlPlane, find_binaries
from tests.k8s.helpers import Crd, create_namespace, load_crds, wait_established

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.k8s)


@pytest.fixture(scope="session")
def k8s_binaries() -> Binaries:
    """kube-apiserver + etcd (+ helm). Missing: skip with the reason, or fail when CI=true (the tier is required)."""
    try:
        return find_binaries()
    except BinariesMissingError as err:
        problem = str(err)
    if os.environ.get("CI") == "true":
        pytest.fail(f"the k8s tier is required in CI (CI=true) but its binaries are missing: {problem}", pytrace=False)
    pytest.skip(f"k8s tier skipped, binaries missing: {problem}")


@pytest.fixture(scope="session")
def k8s_control_plane(k8s_binaries: Binaries) -> Iterator[TestControlPlane]:
    """etcd + kube-apiserver on free loopback ports, RBAC on, stopped and cleaned up after the session."""
    plane = TestControlPlane(k8s_binaries)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def k8s_api_client(k8s_control_plane: TestControlPlane) -> Iterator[client.ApiClient]:
    """A `kubernetes` ApiClient authenticated as the admin (group system:masters)."""
    with k8s_control_plane.api_client() as api:
        yield api


@pytest.fixture
def namespace(k8s_api_client: client.ApiClient) -> str:
    """A fresh namespace for one test."""
    return create_namespace(k8s_api_client, f"t-{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session")
def meshwork_crds(k8s_api_client: client.ApiClient) -> dict[str, Crd]:
    """Every CRD in crds/*.yaml installed on the session's apiserver and Established, by kind."""
    crds = load_crds()
    ext = client.ApiextensionsV1Api(k8s_api_client)
    for crd in crds.values():
        try:
            ext.create_custom_resource_definition(cast(Any, crd.body))
        except client.ApiException as err:
            if err.status != 409:
                pytest.fail(f"the apiserver refused {crd.path.name}: {err.status} {err.body}", pytrace=False)
    for crd in crds.values():
        wait_established(k8s_api_client, crd.name)
    return crds
