"""An existing cluster for the e2e stories (kind, or any cluster a user points at): used as it is.

``MESHWORK_E2E_KUBECONFIG=PATH`` switches the `cluster` fixture (`mesh_operator.testing.pytest_cluster`) to this
mode: the project's own single-node cluster is not started (no lock, no egress guard, no teardown: the cluster is
the user's), and ``MESHWORK_E2E_IMAGES=control-plane=REF,sidecar=REF`` names the images the cluster already has
(``kind load docker-image``), instead of importing `make images`' archives into the project cluster's containerd.
Everything else of the stories is identical: they talk to the cluster through kubectl and helm only.
scripts/kind/e2e.sh sets both for a kind cluster it creates; see docs/cluster-test-tier.md.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from mesh_operator.testing.binaries import cache_dir, k8s_version
from mesh_operator.testing.cluster import Cluster, ClusterBinaries, ClusterError, ClusterUnavailable

__all__ = ["IMAGES_ENV", "KUBECONFIG_ENV", "ExistingCluster", "existing_images", "existing_kubeconfig", "tool"]

KUBECONFIG_ENV = "MESHWORK_E2E_KUBECONFIG"
IMAGES_ENV = "MESHWORK_E2E_IMAGES"
IMAGE_NAMES = ("control-plane", "sidecar")


def existing_kubeconfig() -> Path | None:
    """The kubeconfig of the existing cluster, or None for the project's own cluster."""
    value = os.environ.get(KUBECONFIG_ENV, "").strip()
    return Path(value) if value else None


def tool(name: str) -> Path:
    """A client binary: the project's cached one (`make k8s-cluster-binaries` / `make k8s-binaries`), else PATH."""
    cached = cache_dir() / k8s_version() / name
    if os.access(cached, os.X_OK):
        return cached
    found = shutil.which(name)
    if found is None:
        raise ClusterUnavailable(f"{name} is neither in {cached.parent} nor on PATH")
    return Path(found)


def existing_images() -> dict[str, str]:
    """``MESHWORK_E2E_IMAGES`` (``control-plane=REF,sidecar=REF``) parsed; a clear error for anything else."""
    text = os.environ.get(IMAGES_ENV, "").strip()
    if not text:
        raise ClusterUnavailable(f"{KUBECONFIG_ENV} is set, so {IMAGES_ENV} must name the images the cluster has")
    images: dict[str, str] = {}
    for part in text.split(","):
        name, sep, ref = part.strip().partition("=")
        if not sep or name not in IMAGE_NAMES or ":" not in ref.rsplit("/", 1)[-1]:
            raise ClusterUnavailable(
                f"{IMAGES_ENV}: {part.strip()!r} is not NAME=REPOSITORY:TAG with NAME one of {', '.join(IMAGE_NAMES)}"
            )
        images[name] = ref
    missing = [n for n in IMAGE_NAMES if n not in images]
    if missing:
        raise ClusterUnavailable(f"{IMAGES_ENV}: no image for {', '.join(missing)}")
    return images


class _Tools(ClusterBinaries):
    """Only kubectl is used against an existing cluster."""

    def __getitem__(self, name: str) -> Path:
        if name != "kubectl":
            raise ClusterError(f"an existing cluster is used through kubectl only, not {name}")
        return self.directory / "kubectl"


class ExistingCluster(Cluster):
    """The `Cluster` interface the stories use (kubectl, apply, kubeconfig_path) over a cluster someone else runs.
    `up` and `down` do nothing: this code never starts, stops or cleans that cluster."""

    def __init__(self, kubeconfig: Path, kubectl: Path | None = None) -> None:
        if not kubeconfig.is_file():
            raise ClusterUnavailable(f"{KUBECONFIG_ENV}={kubeconfig}: no such file")
        kubectl = kubectl or tool("kubectl")
        if kubectl.name != "kubectl":
            raise ClusterUnavailable(f"the kubectl binary must be named kubectl, not {kubectl.name}")
        self.existing_kubeconfig = kubeconfig
        self.binaries = _Tools(directory=kubectl.parent, etcd=Path("/nonexistent"))
        self.timings: dict[str, float] = {}
        self.guard_drops = 0

    @property
    def kubeconfig_path(self) -> Path:
        return self.existing_kubeconfig

    def up(self) -> Cluster:
        self.kubectl("get", "--raw", "/readyz", timeout=30)
        return self

    def down(self) -> list[str]:
        return []

    def ctr(self, *args: str, timeout: float = 120.0, check: bool = True) -> str:
        raise ClusterError("an existing cluster's images are loaded by its owner (kind load docker-image), not ctr")

    def import_image(self, archive: Path, base_name: str) -> None:
        self.ctr()

    def client_configuration(self) -> Any:
        raise ClusterError("an existing cluster is used through kubectl only")
