"""Sidecar injection, traffic capture and offline injection of manifests. Pure (no I/O) except
:func:`mesh_operator.inject.capture.main`, the init container's entry point.

* :func:`inject_pod` – a pod dict -> :class:`Injected` (the new pod) or :class:`Skipped` (the reason)
* :func:`review` – the admission handler (``/inject``): AdmissionReview request -> AdmissionResponse
* :func:`inject_documents` – ``meshctl inject``: Pods, Deployments, Jobs, … in multi-document YAML
* :func:`~mesh_operator.inject.capture.rules` – the iptables rules of one pod
* :class:`InjectionSettings` – the mesh-wide defaults; :mod:`.annotations` – the per-pod overrides
"""

from mesh_operator.inject.errors import InjectionError
from mesh_operator.inject.manifest import inject_documents
from mesh_operator.inject.pod import Injected, Skipped, inject_pod
from mesh_operator.inject.review import review
from mesh_operator.inject.settings import InjectionSettings, Resources

__all__ = [
    "Injected",
    "InjectionError",
    "InjectionSettings",
    "Resources",
    "Skipped",
    "inject_documents",
    "inject_pod",
    "review",
]
