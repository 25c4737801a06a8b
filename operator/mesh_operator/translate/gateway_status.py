"""Route status as the Gateway API specifies it (``status.parents[]``), and XMesh's status. Pure: dicts in, out.

::

    status:
      parents:
      - parentRef: {group: "", kind: Service, name: echo, namespace: mesh, port: 80}
        controllerName: meshwork.io/mesh-controller
        conditions:
        - {type: Accepted,     status: "True",  reason: Accepted, observedGeneration: 2, ...}
        - {type: ResolvedRefs, status: "False", reason: BackendNotFound, message: "spec.rules[5]...: ..."}
        - {type: meshwork.io/Applied, status: "True", reason: Applied, message: "3/3 proxies applied it"}

Only entries for Service parents with our ``controllerName`` are ours: every other controller's entry is kept as it
was read. ``meshwork.io/Applied`` carries the delivery receipt (a domain-prefixed condition type, which the Gateway
API allows beside its own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mesh_operator.api.gateway import CONTROLLER_NAME
from mesh_operator.translate.gateway import ParentOutcome, RouteOutcome

MAX_MESSAGE = 1024
APPLIED = "meshwork.io/Applied"

#: What Meshwork claims in XMesh status: only what its tests and the conformance profile it passes cover.
SUPPORTED_FEATURES = (
    "GRPCRoute",
    "HTTPRoute",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendTimeout",
    "HTTPRouteCORS",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRewrite",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "Mesh",
    "MeshClusterIPMatching",
    "MeshConsumerRoute",
    "MeshHTTPRouteNamedRouteRule",
    "MeshHTTPRouteQueryParamMatching",
    "MeshHTTPRouteRedirectPath",
    "MeshHTTPRouteRedirectPort",
    "MeshHTTPRouteRewritePath",
    "MeshHTTPRouteSchemeRedirect",
)


def _condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "observedGeneration": generation,
    }


def parent_ref(po: ParentOutcome, route_namespace: str) -> dict[str, Any]:
    ref: dict[str, Any] = {"group": "", "kind": "Service", "name": po.parent.name}
    ref["namespace"] = po.parent.namespace or route_namespace
    if po.parent.port is not None:
        ref["port"] = po.parent.port
    if po.parent.section_name is not None:
        ref["sectionName"] = po.parent.section_name
    return ref


def parent_status(
    po: ParentOutcome, route_namespace: str, generation: int, receipt: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    accepted_msg = "; ".join(str(v) for v in po.violations) or "the route is attached to the Service"
    refs_msg = "; ".join(str(v) for v in po.ref_problems) or "every backendRef resolves to a Service"
    conditions = [
        _condition("Accepted", po.accepted, po.accepted_reason, accepted_msg, generation),
        _condition("ResolvedRefs", po.resolved, po.resolved_reason, refs_msg, generation),
    ]
    if receipt is not None:
        affected, applied = int(receipt.get("proxies", 0)), int(receipt.get("applied", 0))
        rejected = receipt.get("rejected") or {}
        ok = po.accepted and affected > 0 and applied == affected and not rejected
        reason = "Applied" if ok else ("Rejected" if rejected else "Pending")
        msg = f"{applied}/{affected} proxies applied it"
        if rejected:
            msg += "; rejected by " + ", ".join(f"{p}: {m}" for p, m in sorted(rejected.items()))
        conditions.append(_condition(APPLIED, ok, reason, msg, generation))
    return {"parentRef": parent_ref(po, route_namespace), "controllerName": CONTROLLER_NAME, "conditions": conditions}


def route_status(
    outcome: RouteOutcome,
    route_namespace: str,
    current: Mapping[str, Any] | None = None,
    receipt: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole ``status`` to write: other controllers' parents kept as read, ours replaced (a parent we no
    longer see is dropped from our entries only)."""
    theirs = [
        p
        for p in (current or {}).get("parents") or []
        if isinstance(p, Mapping) and p.get("controllerName") != CONTROLLER_NAME
    ]
    ours = [parent_status(po, route_namespace, outcome.generation, receipt) for po in outcome.parents]
    return {**(current or {}), "parents": [*theirs, *ours]}


def xmesh_status(generation: int, features: Sequence[str] = SUPPORTED_FEATURES) -> dict[str, Any]:
    """XMesh (GEP-3949) status: Accepted, and the supported features sorted as the spec requires."""
    return {
        "conditions": [
            _condition("Accepted", True, "Accepted", "Meshwork implements this mesh", generation),
        ],
        "supportedFeatures": [{"name": f} for f in sorted(set(features))],
    }
