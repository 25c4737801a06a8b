"""TrafficPolicy + RetryPolicy -> the routes and clusters callers use to reach one service.

The result depends only on the service and its policies, never on the caller (except locality, applied by the
xDS stage), so every caller shares the same IR objects and the serialization cache serves them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from mesh_operator.api import Mesh, RetryPolicy, TrafficPolicy
from mesh_operator.api.common import duration_ms
from mesh_operator.api.traffic_policy import HeaderModifier, Match, Rule
from mesh_operator.translate.policies import key_of
from mesh_operator.translate.state import ServiceInfo
from mesh_operator.translate.status import PolicyKey
from mesh_operator.validation.violations import Violation
from xds_server import ir
from xds_server.ir.routes import MatchKind

DEFAULT_REQUEST_TIMEOUT_MS = 15_000
DEFAULT_RETRY = ir.Retry(attempts=2, retry_on=("connect-failure", "refused-stream"))

_PATH_KIND: dict[str, Literal["exact", "prefix", "regex"]] = {
    "Exact": "exact",
    "PathPrefix": "prefix",
    "RegularExpression": "regex",
}
_VALUE_KIND: dict[str, MatchKind] = {
    "Exact": "exact",
    "Prefix": "prefix",
    "RegularExpression": "regex",
    "Present": "present",
}
_QUERY_KIND: dict[str, Literal["exact", "regex", "present"]] = {
    "Exact": "exact",
    "RegularExpression": "regex",
    "Present": "present",
}
_LB_KIND: dict[str, Literal["round_robin", "least_request", "ring_hash", "maglev", "random"]] = {
    "RoundRobin": "round_robin",
    "LeastRequest": "least_request",
    "RingHash": "ring_hash",
    "Maglev": "maglev",
    "Random": "random",
}


def provenance(p: TrafficPolicy | RetryPolicy) -> ir.Provenance:
    return ir.Provenance(p.kind, p.metadata.namespace, p.metadata.name, p.metadata.generation)


def cluster_name(svc: ServiceInfo, subset: str | None = None) -> str:
    base = f"{svc.host}|{svc.port}"
    return f"{base}|{subset}" if subset else base


@dataclass(frozen=True, eq=False)
class ServiceRouting:
    """What callers of one service get, plus warnings about the policies involved. Compared by identity: the
    memo hands out the same object while its inputs are unchanged, and that identity is the cheap key below."""

    routes: tuple[ir.Route, ...]
    clusters: tuple[ir.Cluster, ...]
    warnings: tuple[tuple[PolicyKey, Violation], ...]


def service_routing(
    svc: ServiceInfo,
    mesh: Mesh,
    tp: TrafficPolicy | None,
    service_retry: RetryPolicy | None,
    rule_retries: Mapping[str, RetryPolicy],
    spiffe_ids: tuple[str, ...],
) -> ServiceRouting:
    """Routes (in match order, ending with a catch-all) and clusters for callers of ``svc``. Pure: the result
    depends only on the arguments, so callers may memoize it."""
    warnings: list[tuple[PolicyKey, Violation]] = []
    routes: list[ir.Route] = []
    subsets_used: set[str] = set()
    hash_on = _hash_on(tp)
    if tp is not None:
        for i, rule in enumerate(tp.spec.rules):
            rule_name = rule.name or f"rule-{i}"
            retry_policy = rule_retries.get(rule.name or "") or service_retry
            routes.extend(_rule_routes(svc, tp, rule, rule_name, retry_policy, warnings, hash_on))
            subsets_used.update(b.subset for b in rule.backends if b.subset)
            if rule.mirror is not None and rule.mirror.subset:
                subsets_used.add(rule.mirror.subset)
    if not any(_is_catch_all(route.match) for route in routes):
        routes.append(_default_route(svc, tp, service_retry, warnings, hash_on))
    clusters = [_cluster(svc, tp, None, mesh, service_retry, spiffe_ids)]
    if tp is not None:
        selectors = {s.name: s.labels for s in tp.spec.subsets}
        for subset in sorted(subsets_used):
            clusters.append(_cluster(svc, tp, subset, mesh, service_retry, spiffe_ids, selectors[subset]))
    return ServiceRouting(tuple(routes), tuple(clusters), tuple(warnings))


def rule_matches(svc: ServiceInfo, rule: Rule, rule_name: str) -> list[tuple[str, ir.RouteMatch]]:
    """One ``(route name, match)`` per match of a rule (a rule without matches matches everything). Outbound
    routes and the inbound rate-limited routes of the same rule share these names."""
    matches = [_match(m) for m in rule.matches] or [ir.RouteMatch()]
    suffix = len(matches) > 1
    return [(f"{svc.host}/{rule_name}{f'/{j}' if suffix else ''}", m) for j, m in enumerate(matches)]


def _is_catch_all(m: ir.RouteMatch) -> bool:
    return m == ir.RouteMatch()


def _rule_routes(
    svc: ServiceInfo,
    tp: TrafficPolicy,
    rule: Rule,
    rule_name: str,
    retry_policy: RetryPolicy | None,
    warnings: list[tuple[PolicyKey, Violation]],
    hash_on: tuple[ir.HashPolicy, ...],
) -> list[ir.Route]:
    prov = provenance(tp)
    timeout = _timeout_ms(tp, rule)
    retry = _retry(retry_policy, timeout, warnings)
    redirect = None
    if rule.redirect is not None:
        rd = rule.redirect
        redirect = ir.Redirect(rd.scheme, rd.hostname, rd.port, rd.path, rd.prefix, rd.status_code)
    clusters = tuple(ir.WeightedCluster(cluster_name(svc, b.subset), b.weight) for b in rule.backends if b.weight)
    if not clusters and redirect is None:
        clusters = (ir.WeightedCluster(cluster_name(svc), 100),)
    mirrors: tuple[ir.Mirror, ...] = ()
    if rule.mirror is not None:
        mirrors = (ir.Mirror(cluster_name(svc, rule.mirror.subset), rule.mirror.percent),)
    fault = None
    if rule.fault is not None:
        d, a = rule.fault.delay, rule.fault.abort
        fault = ir.Fault(
            delay_ms=duration_ms(d.fixed_delay) if d else None,
            delay_percent=d.percent if d else 0.0,
            abort_status=a.http_status if a else None,
            abort_percent=a.percent if a else 0.0,
        )
    path_rewrite: tuple[Literal["full", "prefix"], str] | None = None
    host_rewrite = None
    if rule.rewrite is not None:
        if rule.rewrite.path is not None:
            kind: Literal["full", "prefix"] = "full" if rule.rewrite.path.type == "ReplaceFullPath" else "prefix"
            path_rewrite = (kind, rule.rewrite.path.value)
        host_rewrite = rule.rewrite.hostname
    idle = rule.timeouts.idle if rule.timeouts and rule.timeouts.idle else None
    if idle is None and tp.spec.timeouts and tp.spec.timeouts.idle:
        idle = tp.spec.timeouts.idle
    out = []
    for name, match in rule_matches(svc, rule, rule_name):
        out.append(
            ir.Route(
                name=name,
                match=match,
                clusters=clusters,
                redirect=redirect,
                mirrors=mirrors,
                fault=fault,
                request_headers=_edits(rule.request_headers),
                response_headers=_edits(rule.response_headers),
                path_rewrite=path_rewrite,
                host_rewrite=host_rewrite,
                timeout_ms=timeout if redirect is None else None,
                idle_timeout_ms=duration_ms(idle) if idle else None,
                retry=retry if redirect is None else None,
                hash_on=hash_on,
                provenance=prov,
            )
        )
    return out


def _default_route(
    svc: ServiceInfo,
    tp: TrafficPolicy | None,
    retry_policy: RetryPolicy | None,
    warnings: list[tuple[PolicyKey, Violation]],
    hash_on: tuple[ir.HashPolicy, ...],
) -> ir.Route:
    timeout = _timeout_ms(tp, None)
    idle = tp.spec.timeouts.idle if tp and tp.spec.timeouts and tp.spec.timeouts.idle else None
    return ir.Route(
        name=f"{svc.host}/default",
        match=ir.RouteMatch(),
        clusters=(ir.WeightedCluster(cluster_name(svc), 100),),
        timeout_ms=timeout,
        idle_timeout_ms=duration_ms(idle) if idle else None,
        retry=_retry(retry_policy, timeout, warnings),
        hash_on=hash_on,
        provenance=provenance(tp) if tp else None,
    )


def _timeout_ms(tp: TrafficPolicy | None, rule: Rule | None) -> int:
    if rule is not None and rule.timeouts and rule.timeouts.request:
        return duration_ms(rule.timeouts.request)
    if tp is not None and tp.spec.timeouts and tp.spec.timeouts.request:
        return duration_ms(tp.spec.timeouts.request)
    return DEFAULT_REQUEST_TIMEOUT_MS


def _retry(p: RetryPolicy | None, route_timeout_ms: int, warnings: list[tuple[PolicyKey, Violation]]) -> ir.Retry:
    if p is None:
        return DEFAULT_RETRY
    spec = p.spec
    per_try = duration_ms(spec.per_try_timeout) if spec.per_try_timeout else None
    if per_try is not None and per_try * (spec.attempts + 1) > route_timeout_ms:
        warning = Violation(
            "spec.perTryTimeout",
            f"{spec.attempts + 1} tries × {spec.per_try_timeout} exceed the route timeout of {route_timeout_ms} ms; "
            "later tries are cut short",
            "warning",
        )
        if (key_of(p), warning) not in warnings:
            warnings.append((key_of(p), warning))
    base = duration_ms(spec.backoff.base_interval) if spec.backoff else None
    top = duration_ms(spec.backoff.max_interval) if spec.backoff and spec.backoff.max_interval else None
    return ir.Retry(
        attempts=spec.attempts,
        retry_on=tuple(spec.retry_on),
        retriable_status_codes=tuple(spec.retriable_status_codes),
        per_try_timeout_ms=per_try,
        backoff_base_ms=base,
        backoff_max_ms=top,
        provenance=provenance(p),
    )


def _match(m: Match) -> ir.RouteMatch:
    path = ir.PathMatch(_PATH_KIND[m.path.type], m.path.value) if m.path else ir.PathMatch("prefix", "/")
    return ir.RouteMatch(
        path=path,
        method=m.method,
        headers=tuple(ir.HeaderMatch(h.name.lower(), _VALUE_KIND[h.type], h.value or "", h.invert) for h in m.headers),
        query=tuple(ir.QueryMatch(q.name, _QUERY_KIND[q.type], q.value or "") for q in m.query_params),
    )


def _edits(mod: HeaderModifier | None) -> ir.HeaderEdits:
    if mod is None:
        return ir.HeaderEdits()
    return ir.HeaderEdits(
        set=tuple((h.name, h.value) for h in mod.set),
        add=tuple((h.name, h.value) for h in mod.add),
        remove=tuple(mod.remove),
    )


def _hash_on(tp: TrafficPolicy | None) -> tuple[ir.HashPolicy, ...]:
    if tp is None or tp.spec.load_balancer is None:
        return ()
    out = []
    for h in tp.spec.load_balancer.hash_on:
        if h.header:
            out.append(ir.HashPolicy("header", h.header.lower()))
        elif h.cookie:
            ttl = duration_ms(h.cookie_ttl) if h.cookie_ttl else None
            out.append(ir.HashPolicy("cookie", h.cookie, ttl))
        elif h.source_ip:
            out.append(ir.HashPolicy("source_ip"))
    return tuple(out)


def _cluster(
    svc: ServiceInfo,
    tp: TrafficPolicy | None,
    subset: str | None,
    mesh: Mesh,
    retry_policy: RetryPolicy | None,
    spiffe_ids: tuple[str, ...],
    selector: dict[str, str] | None = None,
) -> ir.Cluster:
    endpoints = tuple(
        ir.Endpoint(i.address, i.port, i.region, i.zone, 1, f"{i.namespace}/{i.workload}")
        for i in svc.instances
        if selector is None or i.has_labels(selector)
    )
    budget_src = (
        retry_policy.spec.budget if retry_policy and retry_policy.spec.budget else mesh.spec.default_retry_budget
    )
    budget = ir.RetryBudget(budget_src.percent, budget_src.min_retry_concurrency)
    cb = ir.CircuitBreakers(retry_budget=budget)
    lb = ir.LoadBalancer()
    outlier = health = None
    connect_ms = 5_000
    prov: tuple[ir.Provenance, ...] = ()
    if tp is not None:
        spec = tp.spec
        prov = (provenance(tp),)
        if spec.circuit_breaker is not None:
            c = spec.circuit_breaker
            cb = ir.CircuitBreakers(c.max_connections, c.max_pending_requests, c.max_requests, c.max_retries, budget)
        if spec.load_balancer is not None:
            lb = ir.LoadBalancer(_LB_KIND[spec.load_balancer.type], _hash_on(tp), spec.load_balancer.locality_aware)
        if spec.outlier_detection is not None:
            od = spec.outlier_detection
            outlier = ir.OutlierDetection(
                od.consecutive_5xx,
                od.consecutive_gateway_errors,
                duration_ms(od.interval),
                duration_ms(od.base_ejection_time),
                od.max_ejection_percent,
            )
        if spec.health_check is not None:
            health = _health_check(tp)
        if spec.timeouts and spec.timeouts.connect:
            connect_ms = duration_ms(spec.timeouts.connect)
    if retry_policy is not None:
        prov = (*prov, provenance(retry_policy))
    return ir.Cluster(
        name=cluster_name(svc, subset),
        service=svc.host,
        endpoints=endpoints,
        protocol=svc.protocol,
        connect_timeout_ms=connect_ms,
        lb=lb,
        circuit_breakers=cb,
        outlier=outlier,
        health_check=health,
        tls=ir.UpstreamTls(sni=svc.host, peer_spiffe_ids=spiffe_ids),
        provenance=prov,
    )


def _health_check(tp: TrafficPolicy) -> ir.HealthCheck:
    hc = tp.spec.health_check
    assert hc is not None
    timing = ir.HealthCheck(
        "tcp",
        interval_ms=duration_ms(hc.interval),
        timeout_ms=duration_ms(hc.timeout),
        healthy_threshold=hc.healthy_threshold,
        unhealthy_threshold=hc.unhealthy_threshold,
    )
    if hc.http is not None:
        ranges = tuple((s.start, s.end + 1) for s in hc.http.expected_statuses)
        return replace(timing, kind="http", path=hc.http.path, expected_statuses=ranges)
    if hc.grpc is not None:
        return replace(timing, kind="grpc", grpc_service=hc.grpc.service_name)
    return timing
