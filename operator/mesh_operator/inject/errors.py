"""Errors of the injector::

MeshworkError
└── InjectionError   a pod cannot be injected as asked (a bad annotation value, a malformed pod); names the
                     field path. Admission refuses the pod with this message; ``meshctl inject`` exits 1.
"""

from __future__ import annotations

from mesh_operator.errors import MeshworkError


class InjectionError(MeshworkError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
