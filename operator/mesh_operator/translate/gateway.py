"""Gateway API mesh routes (GAMMA): HTTPRoutes and GRPCRoutes whose parentRef is a Service -> the same IR routes
a TrafficPolicy produces.

Who sees which routes (GEP-1426, GEP-2257):

* a **producer** route lives in the Service's namespace and applies to every caller of the Service;
* a **consumer** route lives in another namespace and applies only to callers in that namespace, instead of the
  producer routes (consumer routes win for their namespace).
* Several routes on one parent merge; their rules are ordered as the Gateway API specifies (exact path, longest
  prefix, method, most headers, most query params; then the oldest route, then namespace/name, then rule order).
* Routes replace a TrafficPolicy's ``rules`` for the callers they apply to; the TrafficPolicy's connection settings
  (load balancing, circuit breaking, outlier detection, health checks, connect timeout) still shape the Service's
  cluster, and a TrafficPolicy whose rules are superseded gets a warning naming the routes.

No I/O: a pure function of the mesh state, like every stage-one module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from mesh_operator.api.common import duration_ms
from mesh_operator.api.gateway import (
    BackendRef,
    GatewayRoute,
    GRPCRoute,
    GRPCRouteMatch,
    HTTPRoute,
    HTTPRouteMatch,
    ParentReference,
    filters_of,
    rules_of,
)
from mesh_operator.translate.gateway_match import (
    cors,
    grpc_match,
    header_edits,
    http_match,
    http_rank,
    redirect,
    rewrite,
)
from mesh_operator.translate.memo import IdentityMemo
from mesh_operator.translate.policies import Resolved
from mesh_operator.translate.state import MeshState, ServiceInfo
from mesh_operator.translate.status import PolicyKey
from mesh_operator.translate.traffic import DEFAULT_REQUEST_TIMEOUT_MS, ServiceRouting, cluster_name
from mesh_operator.translate.traffic import _retry as service_retry
from mesh_operator.validation.gateway import validate_gateway_object
from mesh_operator.validation.violations import Violation
from xds_server import ir

# Gateway API condition reasons (gateway.networking.k8s.io/v1 RouteConditionReason).
ACCEPTED = "Accepted"
NO_MATCHING_PARENT = "NoMatchingParent"
UNSUPPORTED_VALUE = "UnsupportedValue"
RESOLVED_REFS = "ResolvedRefs"
BACKEND_NOT_FOUND = "BackendNotFound"
INVALID_KIND = "InvalidKind"
REF_NOT_PERMITTED = "RefNotPermitted"
UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"

#: Validation results of unchanged route objects are reused across translations.
_VALIDATED: IdentityMemo[list[Violation]] = IdentityMemo()


@dataclass
class ParentOutcome:
    """The verdict on one route for one of its (Service) parents: the two Gateway API conditions."""

    parent: ParentReference
    accepted: bool = True
    accepted_reason: str = ACCEPTED
    resolved: bool = True
    resolved_reason: str = RESOLVED_REFS
    violations: list[Violation] = field(default_factory=list)
    ref_problems: list[Violation] = field(default_factory=list)

    def refuse(self, reason: str, v: Violation) -> None:
        if self.accepted:
            self.accepted, self.accepted_reason = False, reason
        self.violations.append(v)

    def unresolved(self, reason: str, v: Violation) -> None:
        if self.resolved:
            self.resolved, self.resolved_reason = False, reason
        if v not in self.ref_problems:
            self.ref_problems.append(v)


@dataclass
class RouteOutcome:
    generation: int
    parents: list[ParentOutcome] = field(default_factory=list)


@dataclass(frozen=True)
class _Attached:
    route: GatewayRoute
    service: str  # namespace/name of the parent Service


def route_key(r: GatewayRoute) -> PolicyKey:
    return PolicyKey(r.kind, r.metadata.namespace, r.metadata.name)


def _age(r: GatewayRoute) -> tuple[str, str, str]:
    return (r.metadata.creation_timestamp or "~", r.metadata.namespace, r.metadata.name)


class GatewayRouting:
    """Resolves every route once per translation (status), and builds the routing of a Service for callers in a
    namespace on demand."""

    def __init__(self, state: MeshState, resolved: Resolved | None = None) -> None:
        self.state = state
        self.resolved = resolved or Resolved()
        self.outcomes: dict[PolicyKey, RouteOutcome] = {}
        self._producer: dict[str, list[GatewayRoute]] = {}
        self._consumer: dict[tuple[str, str], list[GatewayRoute]] = {}
        #: (route, parent service) -> the ports its parentRefs name (``None``: every port of the Service)
        self._ports: dict[tuple[PolicyKey, str], set[int | None]] = {}
        self._built: dict[tuple[str, str, int], ServiceRouting] = {}
        for route in sorted(state.routes, key=_age):
            self._resolve(route)

    # -- resolution (status) -------------------------------------------------------------------------------------

    def _resolve(self, route: GatewayRoute) -> None:
        ns = route.metadata.namespace
        outcome = RouteOutcome(route.metadata.generation)
        self.outcomes[route_key(route)] = outcome
        unsupported = _unsupported(route)
        invalid = [
            v for v in _VALIDATED.get((route,), partial(validate_gateway_object, route)) if v.severity == "error"
        ]
        for i, ref in enumerate(route.spec.parent_refs):
            if not ref.is_service():
                continue  # a Gateway or something else: not ours, no status from us
            parent_ns = ref.namespace or ns
            po = ParentOutcome(ref)
            outcome.parents.append(po)
            path = f"spec.parentRefs[{i}]"
            svc = self.state.services.get(f"{parent_ns}/{ref.name}")
            if svc is None:
                po.refuse(NO_MATCHING_PARENT, Violation(path, f"service {parent_ns}/{ref.name} does not exist"))
            elif svc.on_port(ref.port) is None:
                po.refuse(NO_MATCHING_PARENT, Violation(f"{path}.port", f"service {svc.host} has no port {ref.port}"))
            if ref.section_name is not None:
                po.refuse(UNSUPPORTED_VALUE, Violation(f"{path}.sectionName", "is not supported for Service parents"))
            for v in (*invalid, *unsupported):
                po.refuse(UNSUPPORTED_VALUE, v)
            for v, reason in self._ref_problems(route):
                po.unresolved(reason, v)
            if po.accepted and svc is not None:
                key = f"{svc.namespace}/{svc.name}"
                attached = (
                    self._producer.setdefault(key, []) if parent_ns == ns else self._consumer.setdefault((key, ns), [])
                )
                if not any(r is route for r in attached):  # two parentRefs to one Service: its rules once
                    attached.append(route)
                self._ports.setdefault((route_key(route), key), set()).add(ref.port)

    def _ref_problems(self, route: GatewayRoute) -> list[tuple[Violation, str]]:
        out = []
        for i, rule in enumerate(rules_of(route)):
            refs = [(f"spec.rules[{i}].backendRefs[{j}]", b) for j, b in enumerate(rule.backend_refs)]
            for k, f in enumerate(filters_of(rule)):
                if f.request_mirror is not None:
                    refs.append(
                        (f"spec.rules[{i}].filters[{k}].requestMirror.backendRef", f.request_mirror.backend_ref)
                    )
            for path, b in refs:
                _, problem = self._backend(route, b, path)
                if problem is not None:
                    out.append(problem)
        return out

    def _backend(
        self, route: GatewayRoute, b: BackendRef, path: str
    ) -> tuple[ServiceInfo | None, tuple[Violation, str] | None]:
        if b.group not in ("", "core") or b.kind != "Service":
            return None, (
                Violation(path, f"kind {b.group or 'core'}/{b.kind} is not supported (only Service)"),
                INVALID_KIND,
            )
        ns = b.namespace or route.metadata.namespace
        key = f"{ns}/{b.name}"
        parents = {f"{p.namespace or route.metadata.namespace}/{p.name}" for p in route.spec.parent_refs}
        if ns != route.metadata.namespace and key not in parents:
            why = f"service {key} is in another namespace (ReferenceGrant is not supported yet)"
            return None, (Violation(path, why), REF_NOT_PERMITTED)
        svc = self.state.services.get(key)
        if svc is None:
            return None, (Violation(path, f"service {key} does not exist"), BACKEND_NOT_FOUND)
        view = svc.on_port(b.port)
        if view is None:
            return None, (Violation(f"{path}.port", f"service {key} has no port {b.port}"), BACKEND_NOT_FOUND)
        svc = view
        if isinstance(route, GRPCRoute) and svc.protocol != "http2":
            why = f"service {key} speaks {svc.protocol.upper()}; a GRPCRoute needs HTTP2"
            return None, (Violation(path, why), UNSUPPORTED_PROTOCOL)
        return svc, None

    def attached(self, service_key: str, caller_ns: str, port: int | None = None) -> list[GatewayRoute]:
        """The routes callers in ``caller_ns`` get for the service on ``port`` (``None``: any port): their
        namespace's consumer routes, else the producer routes. A route whose parentRefs name ports attaches to
        those ports only."""
        return self._attached(service_key, caller_ns, port)[0]

    def _attached(self, service_key: str, caller_ns: str, port: int | None) -> tuple[list[GatewayRoute], bool]:
        def on_port(routes: list[GatewayRoute]) -> list[GatewayRoute]:
            if port is None:
                return routes
            return [r for r in routes if self._ports.get((route_key(r), service_key), {None}) & {None, port}]

        consumer = on_port(self._consumer.get((service_key, caller_ns), []))
        if consumer:
            return consumer, True
        return on_port(self._producer.get(service_key, [])), False

    def routed_services(self) -> dict[str, list[GatewayRoute]]:
        """Every service with at least one route attached, and all its routes (producer and consumer)."""
        out: dict[str, list[GatewayRoute]] = {k: list(v) for k, v in self._producer.items()}
        for (svc, _), routes in self._consumer.items():
            out.setdefault(svc, []).extend(routes)
        return out

    # -- building routes ----------------------------------------------------------------------------------------

    def routing(
        self,
        service_key: str,
        caller_ns: str,
        base: ServiceRouting,
        routing_of: Callable[[str, int | None], ServiceRouting],
        port: int | None = None,
    ) -> ServiceRouting:
        """What a caller in ``caller_ns`` gets for the service on ``port`` (``None``: its first port): ``base``
        (its TrafficPolicy routing on that port) unless Gateway API routes apply to it."""
        svc = self.state.services[service_key].on_port(port)
        if svc is None:
            return base
        routes, consumer = self._attached(service_key, caller_ns, svc.port)
        if not routes:
            return base
        ns_key = caller_ns if consumer else ""
        slot = (service_key, ns_key, svc.port)
        if slot not in self._built:
            self._built[slot] = self._build(svc, routes, base, routing_of)
        return self._built[slot]

    def _build(
        self,
        svc: ServiceInfo,
        routes: list[GatewayRoute],
        base: ServiceRouting,
        routing_of: Callable[[str, int | None], ServiceRouting],
    ) -> ServiceRouting:
        service_key = svc.key
        # What a route gets unless it says otherwise: the Service-wide settings of its TrafficPolicy and
        # RetryPolicy (never a TrafficPolicy rule's: those rules are superseded).
        tp = self.resolved.traffic.get(service_key)
        timeouts = tp.spec.timeouts if tp is not None else None
        timeout = duration_ms(timeouts.request) if timeouts and timeouts.request else DEFAULT_REQUEST_TIMEOUT_MS
        default = ir.Route(
            name="",
            match=ir.RouteMatch(),
            timeout_ms=timeout,
            idle_timeout_ms=duration_ms(timeouts.idle) if timeouts and timeouts.idle else None,
            retry=service_retry(self.resolved.retry.get(service_key), timeout, []),
            hash_on=base.routes[-1].hash_on,
        )
        ranked: list[tuple[tuple[object, ...], ir.Route]] = []
        clusters: dict[str, ir.Cluster] = {c.name: c for c in base.clusters[:1]}
        for order, route in enumerate(routes):
            for i in range(len(route.spec.rules)):
                for j, (rank, r) in enumerate(self._rule(svc, route, i, default, routing_of, clusters)):
                    ranked.append(((*rank, order, i, j), r))
        ranked.sort(key=lambda x: x[0])
        return ServiceRouting(tuple(r for _, r in ranked), tuple(clusters.values()), base.warnings)

    def _rule(
        self,
        svc: ServiceInfo,
        route: GatewayRoute,
        i: int,
        default: ir.Route,
        routing_of: Callable[[str, int | None], ServiceRouting],
        clusters: dict[str, ir.Cluster],
    ) -> list[tuple[tuple[object, ...], ir.Route]]:
        rule = route.spec.rules[i]
        prov = ir.Provenance(route.kind, route.metadata.namespace, route.metadata.name, route.metadata.generation)

        def cluster_of(b: BackendRef) -> str | None:
            target, problem = self._backend(route, b, "")
            if target is None or problem is not None:
                return None
            name = cluster_name(target)
            if name not in clusters:
                clusters[name] = routing_of(target.key, target.port).clusters[0]
            return name

        weighted: list[ir.WeightedCluster] = []
        broken = 0
        for b in rule.backend_refs:
            if b.weight == 0:
                continue
            name = cluster_of(b)
            if name is None:
                broken += b.weight
            else:
                weighted.append(ir.WeightedCluster(name, b.weight))
        total = broken + sum(w.weight for w in weighted)
        base = ir.Route(
            name="",
            match=ir.RouteMatch(),
            clusters=tuple(weighted),
            retry=default.retry,
            idle_timeout_ms=default.idle_timeout_ms,
            hash_on=default.hash_on,
            timeout_ms=default.timeout_ms,
            provenance=prov,
        )
        for f in rule.filters:
            if f.request_header_modifier is not None:
                base = replace(base, request_headers=header_edits(f.request_header_modifier))
            elif f.response_header_modifier is not None:
                base = replace(base, response_headers=header_edits(f.response_header_modifier))
            elif (c := getattr(f, "cors", None)) is not None:
                base = replace(base, cors=cors(c))
            elif f.request_mirror is not None:
                m = f.request_mirror
                mirror_to = cluster_of(m.backend_ref)
                if mirror_to is not None:
                    pct = 100.0 if m.percent is None else float(m.percent)
                    if m.fraction is not None:
                        pct = 100.0 * m.fraction.numerator / m.fraction.denominator
                    base = replace(base, mirrors=(*base.mirrors, ir.Mirror(mirror_to, min(pct, 100.0))))
        # A share of the weight on backends that cannot be resolved gets 500 (as the Gateway API requires), and
        # so does a rule with no backend at all (unless it redirects).
        if total == 0 or broken:
            base = replace(
                base, fault=ir.Fault(abort_status=500, abort_percent=100.0 * broken / total if total else 100.0)
            )
        if not weighted:
            base = replace(base, clusters=(ir.WeightedCluster(cluster_name(svc), 1),))
        if isinstance(route, HTTPRoute):
            return self._http_rule(svc, route, i, base)
        return self._grpc_rule(svc, route, i, base)

    def _http_rule(
        self, svc: ServiceInfo, route: HTTPRoute, i: int, base: ir.Route
    ) -> list[tuple[tuple[object, ...], ir.Route]]:
        rule = route.spec.rules[i]
        if rule.timeouts is not None:
            if rule.timeouts.request is not None:
                base = replace(base, timeout_ms=duration_ms(rule.timeouts.request))
            if rule.timeouts.backend_request is not None and base.retry is not None:
                base = replace(
                    base, retry=replace(base.retry, per_try_timeout_ms=duration_ms(rule.timeouts.backend_request))
                )
        out = []
        matches = rule.matches or [HTTPRouteMatch()]
        for j, m in enumerate(matches):
            r = replace(base, name=_name(svc, route, i, j, len(matches)), match=http_match(m))
            for f in rule.filters:
                if f.request_redirect is not None:
                    r = redirect(r, f.request_redirect, m)
                elif f.url_rewrite is not None:
                    r = rewrite(r, f.url_rewrite, m)
            out.append((http_rank(m), r))
        return out

    def _grpc_rule(
        self, svc: ServiceInfo, route: GRPCRoute, i: int, base: ir.Route
    ) -> list[tuple[tuple[object, ...], ir.Route]]:
        rule = route.spec.rules[i]
        matches = rule.matches or [GRPCRouteMatch()]
        out: list[tuple[tuple[object, ...], ir.Route]] = []
        for j, m in enumerate(matches):
            r = replace(base, name=_name(svc, route, i, j, len(matches)), match=grpc_match(m))
            svc_len = len(m.method.service or "") if m.method else 0
            method_len = len(m.method.method or "") if m.method else 0
            out.append(((-svc_len, -method_len, -len(m.headers)), r))
        return out


def _name(svc: ServiceInfo, route: GatewayRoute, i: int, j: int, n: int) -> str:
    rule = route.spec.rules[i].name or f"rule-{i}"
    return f"{svc.host}/{route.kind}/{route.metadata.namespace}/{route.metadata.name}/{rule}{f'/{j}' if n > 1 else ''}"


def _unsupported(route: GatewayRoute) -> list[Violation]:
    """Fields Meshwork parses but does not implement: the route is not accepted rather than half-applied."""
    out = []
    for i, rule in enumerate(rules_of(route)):
        p = f"spec.rules[{i}]"
        if rule.session_persistence is not None:
            out.append(Violation(f"{p}.sessionPersistence", "is not supported"))
        if isinstance(route, HTTPRoute) and route.spec.rules[i].retry is not None:
            out.append(Violation(f"{p}.retry", "is not supported yet (use a RetryPolicy on the Service)"))
        for j, b in enumerate(rule.backend_refs):
            if b.filters:
                out.append(Violation(f"{p}.backendRefs[{j}].filters", "backendRef filters are not supported"))
        for k, f in enumerate(filters_of(rule)):
            if f.type in ("ExtensionRef", "ExternalAuth"):
                out.append(Violation(f"{p}.filters[{k}].type", f"filter {f.type} is not supported"))
    return out
