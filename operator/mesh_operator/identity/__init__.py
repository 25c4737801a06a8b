"""Pod identity, the control plane's side: a projected ServiceAccount token (checked with a TokenReview and
against the bound Pod) and a CSR in, the xDS client certificate of that identity out.

* :func:`~.decide.identity_from_review`, :func:`~.decide.check_pod` – the pure checks
* :class:`~.service.IdentityService` – the checks against the API server, then the CA; :func:`~.service.routes`
  mounts it (``POST /identity/v1/certificate``) on an aiohttp application
"""

from mesh_operator.identity.decide import PodIdentity, Refusal, check_pod, identity_from_review
from mesh_operator.identity.service import PATH, Granted, IdentityService, KubeReader, KubernetesReader, routes

__all__ = [
    "PATH",
    "Granted",
    "IdentityService",
    "KubeReader",
    "KubernetesReader",
    "PodIdentity",
    "Refusal",
    "check_pod",
    "identity_from_review",
    "routes",
]
