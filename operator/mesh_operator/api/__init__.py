"""The Meshwork API (group ``meshwork.io``, version ``v1alpha1``): pydantic models of every kind.

Policy kinds (:class:`TrafficPolicy`, :class:`RetryPolicy`, :class:`AccessPolicy`,
:class:`AuthenticationPolicy`) are namespaced; :class:`Mesh`
is cluster-scoped. :class:`Inventory` is the local-mode stand-in for Services/EndpointSlices/Pods and has no CRD.
"""

from mesh_operator.api.access_policy import AccessPolicy
from mesh_operator.api.authentication_policy import AuthenticationPolicy
from mesh_operator.api.common import API_GROUP, API_VERSION, GROUP_VERSION, Condition, PolicyStatus, duration_ms
from mesh_operator.api.inventory import Inventory
from mesh_operator.api.mesh import Mesh
from mesh_operator.api.retry_policy import RetryPolicy
from mesh_operator.api.traffic_policy import TrafficPolicy

Policy = TrafficPolicy | RetryPolicy | AccessPolicy | AuthenticationPolicy

#: Kinds with a CRD, in the order the CRDs are generated.
CRD_KINDS: dict[str, type[TrafficPolicy | RetryPolicy | AccessPolicy | AuthenticationPolicy | Mesh]] = {
    "Mesh": Mesh,
    "TrafficPolicy": TrafficPolicy,
    "RetryPolicy": RetryPolicy,
    "AccessPolicy": AccessPolicy,
    "AuthenticationPolicy": AuthenticationPolicy,
}
KINDS: dict[str, type[TrafficPolicy | RetryPolicy | AccessPolicy | AuthenticationPolicy | Mesh | Inventory]] = {
    **CRD_KINDS,
    "Inventory": Inventory,
}

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "CRD_KINDS",
    "GROUP_VERSION",
    "KINDS",
    "AccessPolicy",
    "AuthenticationPolicy",
    "Condition",
    "Inventory",
    "Mesh",
    "Policy",
    "PolicyStatus",
    "RetryPolicy",
    "TrafficPolicy",
    "duration_ms",
]
