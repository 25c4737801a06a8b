"""Public testing helpers: a real Kubernetes control plane (etcd + kube-apiserver) for tests and developers.

    from mesh_operator.testing import TestControlPlane

    with TestControlPlane() as plane:
        api = plane.api_client()

Names are loaded lazily so that ``python -m mesh_operator.testing.apiserver`` does not import its module twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mesh_operator.testing.apiserver import (
        DEFAULT_HELM_VERSION,
        DEFAULT_K8S_VERSION,
        Binaries,
        BinariesMissingError,
        ControlPlaneError,
        TestControlPlane,
        cache_dir,
        find_binaries,
    )

__all__ = [
    "DEFAULT_HELM_VERSION",
    "DEFAULT_K8S_VERSION",
    "Binaries",
    "BinariesMissingError",
    "ControlPlaneError",
    "TestControlPlane",
    "cache_dir",
    "find_binaries",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("mesh_operator.testing.apiserver"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
