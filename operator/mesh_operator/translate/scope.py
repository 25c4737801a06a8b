"""Sidecar scoping (transparent mode): which Services one sidecar receives.

A transparent-mode sidecar can be handed every Service of the mesh (the capture listener matches any ClusterIP),
which makes each sidecar's memory and each push grow with the mesh. It gets only:

1. **What its egress declaration lists**, if ``Mesh.spec.sidecarEgress`` selects it (an entry for its namespace
   and service account wins over the namespace's entry); without one, every Service. A listed Service that does not
   exist is reported (:func:`missing_services`, ``meshctl check`` MW0006) and sent once it exists.
2. **Of those, what its identity may reach**: a Service is left out when it is default-deny for this identity —
   enforced ``Allow`` rules target it, none names this identity, and none admits callers by a JWT
   (``requestPrincipals``/``claims``: a request of this workload may carry one). ``mode: Shadow`` rules never hide
   a Service (not enforced); ``mode: Off`` policies are not in force.

   ``Deny`` rules never hide a Service, even one naming this identity for every request: a Deny is an explicit
   block whose hits the operator wants to see — the caller gets the destination's 403 naming the policy, and the
   destination's access log records the attempt — and it names a handful of identities, so leaving the Service
   out would save next to no memory.

With no declaration and no AccessPolicy a sidecar gets everything, as before: scoping never breaks a call the
mesh would let through. A caller left out by an Allow list sees its connection not routed by its own sidecar
(passed through and refused by the destination's STRICT mTLS under ``AllowAny``, refused at once under
``RegistryOnly``) instead of the destination's 403.

Explicit-mode sidecars (local mode's declared ``upstreams``) are not scoped: they get exactly what they declare.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mesh_operator.api import AccessPolicy
from mesh_operator.api.mesh import Mesh, SidecarEgress
from mesh_operator.translate.access import rbac_policies, spiffe_id
from mesh_operator.translate.state import MeshState, WorkloadInfo
from mesh_operator.validation.violations import Violation
from xds_server import ir

__all__ = ["Gate", "Scoper", "egress_for", "gate_of", "missing_services", "selected"]


@dataclass(frozen=True, slots=True)
class Gate:
    """What a Service's enforced Allow rules say about callers, by identity alone (Deny rules never hide it)."""

    #: None: no enforced Allow rule (open); else the peers some enforced Allow rule names
    allowed: tuple[ir.Principal, ...] | None = None
    #: some enforced Allow rule admits callers by their JWT (any workload may carry one)
    by_jwt: bool = False

    def admits(self, identity: str) -> bool:
        if self.allowed is None or self.by_jwt:
            return True
        return any(_peer_matches(p, identity) for p in self.allowed)


_OPEN = Gate()


def _peer_matches(p: ir.Principal, identity: str) -> bool:
    if p.request is not None:
        return False
    if p.spiffe_exact is not None:
        return identity == p.spiffe_exact
    if p.spiffe_prefix is not None:
        return identity.startswith(p.spiffe_prefix)
    return p.any


def gate_of(policies: Iterable[AccessPolicy], trust_domain: str) -> Gate:
    """The gate of one Service from its AccessPolicies in force (as resolved: ``Off`` ones are not among them)."""
    allowed: list[ir.Principal] | None = None
    by_jwt = False
    for p in rbac_policies(list(policies), trust_domain):
        if p.shadow or p.action != "allow":
            continue
        for rule in p.rules:
            principals = rule.principals or (ir.Principal(any=True),)
            allowed = allowed if allowed is not None else []
            allowed += [x for x in principals if x.request is None]
            by_jwt = by_jwt or any(x.request is not None for x in principals)
    if allowed is None or by_jwt:
        return _OPEN
    return Gate(tuple(allowed), by_jwt)


def egress_for(mesh: Mesh, namespace: str, service_account: str) -> SidecarEgress | None:
    """The egress declaration selecting a sidecar: its service account's entry, else its namespace's."""
    by_namespace = None
    for e in mesh.spec.sidecar_egress:
        if e.namespace != namespace:
            continue
        if e.service_account == service_account:
            return e
        if e.service_account is None and by_namespace is None:
            by_namespace = e
    return by_namespace


def selected(egress: SidecarEgress, services: Iterable[str]) -> set[str]:
    """The Service keys (``namespace/name``) of ``services`` an egress declaration lists."""
    exact = {s for s in egress.services if not s.endswith("/*")}
    namespaces = {s[:-2] for s in egress.services if s.endswith("/*")}
    return {k for k in services if k in exact or k.partition("/")[0] in namespaces}


class Scoper:
    """Decides, once per identity and translation, the Services a transparent sidecar receives."""

    def __init__(self, state: MeshState, access: Mapping[str, list[AccessPolicy]], trust_domain: str) -> None:
        self._state = state
        self._trust_domain = trust_domain
        self._gates: dict[str, Gate] = {}
        for key, policies in access.items():
            if policies and key in state.services:
                gate = gate_of(policies, trust_domain)
                if gate is not _OPEN:
                    self._gates[key] = gate
        self._scopes: dict[tuple[str, str], frozenset[str] | None] = {}

    def scope(self, w: WorkloadInfo) -> frozenset[str] | None:
        """The keys of the Services ``w`` receives; None: every Service."""
        who = (w.namespace, w.service_account)
        if who not in self._scopes:
            self._scopes[who] = self._compute(*who)
        return self._scopes[who]

    def _compute(self, namespace: str, service_account: str) -> frozenset[str] | None:
        egress = egress_for(self._state.mesh, namespace, service_account)
        if egress is None and not self._gates:
            return None
        candidates: Iterable[str] = self._state.services if egress is None else selected(egress, self._state.services)
        identity = spiffe_id(self._trust_domain, namespace, service_account)
        refused = {k for k, gate in self._gates.items() if not gate.admits(identity)}
        if egress is None and not refused:
            return None
        return frozenset(k for k in candidates if k not in refused)


def missing_services(state: MeshState) -> list[Violation]:
    """Services an egress declaration lists that the mesh does not have (a namespace with none, for ``ns/*``)."""
    out: list[Violation] = []
    namespaces: set[str] | None = None  # (looked at only for an ``ns/*``: every round asks, most meshes have none)
    for i, e in enumerate(state.mesh.spec.sidecar_egress):
        for k, s in enumerate(e.services):
            path = f"spec.sidecarEgress[{i}].services[{k}]"
            if s.endswith("/*"):
                if namespaces is None:
                    namespaces = {key.partition("/")[0] for key in state.services}
                if s[:-2] not in namespaces:
                    out.append(Violation(path, f"namespace {s[:-2]} has no Service (yet)", "warning"))
            elif s not in state.services:
                out.append(Violation(path, f"service {s} does not exist (yet): it is sent once it does", "warning"))
    return out
