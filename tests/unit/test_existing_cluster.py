"""The e2e fixtures' existing-cluster mode (kind, ...): what the environment must say, and clear errors otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_operator.testing.cluster import ClusterError, ClusterUnavailable
from mesh_operator.testing.existing_cluster import ExistingCluster, existing_images, existing_kubeconfig


def test_without_the_kubeconfig_variable_the_project_cluster_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESHWORK_E2E_KUBECONFIG", raising=False)
    assert existing_kubeconfig() is None
    monkeypatch.setenv("MESHWORK_E2E_KUBECONFIG", "/tmp/kind/kubeconfig")
    assert existing_kubeconfig() == Path("/tmp/kind/kubeconfig")


def test_the_images_variable_names_both_images_by_repository_and_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MESHWORK_E2E_IMAGES", "control-plane=localhost/meshwork/control-plane:e2e, sidecar=localhost:5000/sc:1"
    )
    assert existing_images() == {
        "control-plane": "localhost/meshwork/control-plane:e2e",
        "sidecar": "localhost:5000/sc:1",
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "MESHWORK_E2E_IMAGES must name the images"),
        ("control-plane=localhost/cp:1", "no image for sidecar"),
        (
            "control-plane=localhost/cp:1,sidecar=localhost:5000/sc",
            "'sidecar=localhost:5000/sc' is not NAME=REPOSITORY:TAG",
        ),
        ("controlplane=localhost/cp:1,sidecar=localhost/sc:1", "'controlplane=localhost/cp:1' is not NAME="),
    ],
)
def test_a_wrong_images_variable_is_refused_naming_the_part(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("MESHWORK_E2E_IMAGES", value)
    with pytest.raises(ClusterUnavailable, match=message.replace("(", r"\(")):
        existing_images()


def test_an_existing_cluster_is_never_started_or_cleaned_and_only_kubectl_is_used(tmp_path: Path) -> None:
    with pytest.raises(ClusterUnavailable, match="no such file"):
        ExistingCluster(tmp_path / "missing")
    config = tmp_path / "kubeconfig"
    config.write_text("apiVersion: v1\nkind: Config\n")
    kubectl = tmp_path / "bin" / "kubectl"
    c = ExistingCluster(config, kubectl)
    assert c.kubeconfig_path == config
    assert c.binaries["kubectl"] == kubectl
    assert c.down() == []
    with pytest.raises(ClusterError, match="through kubectl only"):
        c.binaries["ctr"]
    with pytest.raises(ClusterError, match="kind load docker-image"):
        c.import_image(tmp_path / "x.tar", "localhost/x")
