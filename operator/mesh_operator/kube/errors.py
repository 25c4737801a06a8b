"""Errors of the Kubernetes source::

MeshworkError
└── KubeError            the operator cannot talk to Kubernetes as configured
    └── ApiError         the API server answered a request with an error status
"""

from __future__ import annotations

from mesh_operator.errors import MeshworkError


class KubeError(MeshworkError):
    pass


class ApiError(KubeError):
    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.message = message
