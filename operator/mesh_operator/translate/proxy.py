"""Assemble everything one proxy receives: its inbound listeners and the outbound side of its upstreams."""

from __future__ import annotations

from functools import partial

from mesh_operator.api.common import duration_ms
from mesh_operator.api.retry_policy import RetryPolicy
from mesh_operator.api.traffic_policy import TrafficPolicy
from mesh_operator.translate.access import rbac_policies, spiffe_id
from mesh_operator.translate.authentication import jwt_authn
from mesh_operator.translate.gateway import GatewayRouting
from mesh_operator.translate.gateway_hooks import warn_superseded
from mesh_operator.translate.memo import IdentityMemo
from mesh_operator.translate.policies import Resolved, key_of
from mesh_operator.translate.ratelimit_global import global_rate_limit, warn_without_service
from mesh_operator.translate.scope import Scoper
from mesh_operator.translate.state import MeshState, ServiceInfo, WorkloadInfo
from mesh_operator.translate.status import TRANSLATION_FAILED, PolicyKey, PolicyOutcome
from mesh_operator.translate.tracing import trace_sampling, trace_service_name, traced_outbound, tracing_settings
from mesh_operator.translate.traffic import ServiceRouting, provenance, rule_matches, service_routing
from mesh_operator.translate.transparent import transparent_config
from mesh_operator.validation.violations import Violation
from xds_server import ir


def mesh_settings(state: MeshState) -> ir.MeshSettings:
    spec = state.mesh.spec
    return ir.MeshSettings(
        trust_domain=spec.trust_domain,
        mtls_mode="permissive" if spec.mtls.mode == "Permissive" else "strict",
        access_log=ir.AccessLogSettings(
            enabled=spec.access_log.enabled,
            format="json" if spec.access_log.format == "JSON" else "text",
            path=spec.access_log.path,
        ),
        metrics_enabled=spec.metrics.enabled,
        ratelimit_service=(spec.rate_limit_service.address, spec.rate_limit_service.port)
        if spec.rate_limit_service is not None
        else None,
        tracing=tracing_settings(state.mesh),
    )


def service_identities(svc: ServiceInfo, trust_domain: str) -> tuple[str, ...]:
    return tuple(sorted({spiffe_id(trust_domain, i.namespace, i.service_account) for i in svc.instances}))


_ROUTING: IdentityMemo[ServiceRouting] = IdentityMemo(maxsize=65_536)
_OUTBOUND: IdentityMemo[ir.OutboundListener] = IdentityMemo(maxsize=262_144)


class ProxyBuilder:
    """Builds ProxyConfigs, computing each service's outbound routing once for all its callers."""

    def __init__(
        self,
        state: MeshState,
        resolved: Resolved,
        *,
        routing_cache: dict[str, ServiceRouting] | None = None,
        rule_retries: dict[str, dict[str, RetryPolicy]] | None = None,
        mesh: ir.MeshSettings | None = None,
        apply_warnings: bool = True,
        outbound_cache: dict[tuple[str, int], tuple[ServiceRouting, ir.OutboundListener]] | None = None,
    ) -> None:
        """``routing_cache``, ``rule_retries``, ``mesh`` and ``apply_warnings=False`` are for the incremental
        translator (:mod:`mesh_operator.translate.incremental`): it keeps routings across translations, indexes
        the rule retries itself and applies the warnings to its own copies of the outcomes."""
        self.state = state
        self.resolved = resolved
        self.mesh = mesh if mesh is not None else mesh_settings(state)
        self.apply_warnings = apply_warnings
        self._outbound_cache = outbound_cache
        #: how often a policy's translation raised (and was contained); the incremental translator then falls
        #: back to a full translation, which pins the failure exactly as :func:`translate_mesh` does
        self.failures = 0
        self._routing: dict[str, ServiceRouting] = routing_cache if routing_cache is not None else {}
        if rule_retries is None:
            rule_retries = {}
            for (service, rule), policy in resolved.rule_retry.items():
                rule_retries.setdefault(service, {})[rule] = policy
        self._rule_retries = rule_retries
        if self.mesh.ratelimit_service is None and apply_warnings:
            warn_without_service(resolved)
        self.gateway = GatewayRouting(state, resolved)
        warn_superseded(self.gateway, resolved)
        self._scoper: Scoper | None = None

    def scope(self, w: WorkloadInfo) -> frozenset[str] | None:
        """The Services a transparent sidecar receives (None: all of them); see :mod:`.scope`."""
        if self._scoper is None:
            self._scoper = Scoper(self.state, self.resolved.access, self.mesh.trust_domain)
        return self._scoper.scope(w)

    def routing_for(self, service_key: str, caller_namespace: str, port: int | None = None) -> ServiceRouting:
        """A service's outbound routing on one of its ports (``None``: the first) as callers in
        ``caller_namespace`` see it (Gateway API routes, if any apply to them, else the TrafficPolicy's)."""
        base = self.routing_on(service_key, port)
        return self.gateway.routing(service_key, caller_namespace, base, self.routing_on, port)

    def routing_on(self, service_key: str, port: int | None) -> ServiceRouting:
        """A service's outbound routing on one of its ports: the first port's is :meth:`routing`; another port's
        is the same translation of that port's view (its own cluster ``host|port``), memoized the same way."""
        svc = self.state.services[service_key]
        view = svc.on_port(port)
        if view is None or view is svc:
            return self.routing(service_key)
        return self._translate_routing(service_key, view)

    def routing(self, service_key: str) -> ServiceRouting:
        """A service's outbound routing, computed once per translation and reused across translations while
        the service and every policy it depends on are the same objects."""
        if service_key not in self._routing:
            self._routing[service_key] = self._translate_routing(service_key, self.state.services[service_key])
        return self._routing[service_key]

    def _translate_routing(self, service_key: str, view: ServiceInfo) -> ServiceRouting:
        """The routing of ``view`` (the service or one of its port views) with the service's policies, memoized
        across translations by value; a raising translation is retried without its culprit."""
        svc = self.state.services[service_key]
        r = self.resolved
        tp, retry = r.traffic.get(service_key), r.retry.get(service_key)
        rule_retries = self._rule_retries.get(service_key, {})
        ids = service_identities(svc, self.mesh.trust_domain)
        keys = (view, self.state.mesh, tp, retry, ids, *(x for kv in sorted(rule_retries.items()) for x in kv))
        try:
            result = _ROUTING.get(keys, lambda: service_routing(view, self.state.mesh, tp, retry, rule_retries, ids))
        except Exception as e:
            self.failures += 1
            result = self._routing_without_culprit(view, tp, retry, rule_retries, ids, e)
        if self.apply_warnings:
            apply_routing_warnings(r.outcomes, result)
        return result

    def _routing_without_culprit(
        self,
        svc: ServiceInfo,
        tp: TrafficPolicy | None,
        retry: RetryPolicy | None,
        rule_retries: dict[str, RetryPolicy],
        ids: tuple[str, ...],
        error: Exception,
    ) -> ServiceRouting:
        """Translating a service's policies raised: find the policy without which it works, mark it
        ``TranslationFailed`` and route without it. If no single policy is to blame, all of them are."""
        mesh = self.state.mesh
        suspects: list[TrafficPolicy | RetryPolicy] = [p for p in (tp, retry, *rule_retries.values()) if p]
        why = Violation("", f"translation failed: {type(error).__name__}: {error}; please report it")
        for suspect in suspects:
            t = None if suspect is tp else tp
            r = None if suspect is retry else retry
            rr = {k: v for k, v in rule_retries.items() if v is not suspect}
            try:
                result = service_routing(svc, mesh, t, r, rr, ids)
            except Exception:
                continue
            self.resolved.outcomes[key_of(suspect)].reject(TRANSLATION_FAILED, why)
            return result
        for suspect in suspects:
            self.resolved.outcomes[key_of(suspect)].reject(TRANSLATION_FAILED, why)
        return service_routing(svc, mesh, None, None, {}, ids)

    def build(self, w: WorkloadInfo) -> ir.ProxyConfig:
        node = ir.NodeInfo(
            id=w.node_id,
            namespace=w.namespace,
            workload=w.name,
            service_account=w.service_account,
            spiffe_id=spiffe_id(self.mesh.trust_domain, w.namespace, w.service_account),
            region=w.region,
            zone=w.zone,
        )
        clusters: dict[str, ir.Cluster] = {}
        inbound = []
        for ib in w.inbound:
            svc = self.state.services[ib.service]
            svc = next((v for v in svc.port_views() if ib.listen_port in {i.port for i in v.instances}), svc)
            local = ir.Cluster(
                name=f"inbound|{ib.listen_port}",
                service=svc.host,
                endpoints=(ir.Endpoint(ib.app_address, ib.app_port, instance=w.node_id),),
                protocol=svc.protocol,
                connect_timeout_ms=1_000,
            )
            clusters[local.name] = local
            inbound.append(
                ir.InboundListener(
                    name=f"inbound|{ib.listen_port}",
                    address=ib.listen_address,
                    port=ib.listen_port,
                    protocol="tcp" if svc.protocol == "tcp" else "http",
                    local_cluster=local.name,
                    tls=ir.InboundTls(self.mesh.mtls_mode),
                    rbac=rbac_policies(self.resolved.access.get(ib.service, []), self.mesh.trust_domain),
                    routes=self._inbound_routes(ib.service, svc, local.name),
                    jwt=jwt_authn(self.resolved.authn.get(ib.service, [])) if svc.protocol != "tcp" else None,
                    service=svc.host,
                )
            )
        if w.transparent:
            t = transparent_config(
                self.state,
                w,
                partial(self.routing_for, caller_namespace=w.namespace),
                inbound,
                clusters,
                self.scope(w),
            )
            return ir.ProxyConfig(
                node=node,
                mesh=self.mesh,
                inbound=(),
                outbound=(),
                clusters=tuple(clusters[name] for name in sorted(clusters)),
                transparent=t,
            )
        outbound = []
        for up in w.upstreams:
            target = self.state.services.get(up.service)
            if target is None:
                continue
            routing = self.routing_for(up.service, w.namespace)
            for c in routing.clusters:
                clusters[c.name] = c
            # The same routing object and port give the very same listener object: stage 2 then finds its bytes
            # by identity instead of hashing the whole route table.
            if self.mesh.tracing is None:
                outbound.append(self.outbound_listener(up.service, target, routing, up.local_port))
            else:
                name = trace_service_name(w, self.state)
                sampling = trace_sampling(self.resolved.traffic.get(up.service))
                outbound.append(
                    _OUTBOUND.get(
                        (routing, up.local_port, name, sampling),
                        partial(traced_outbound, _outbound(target, routing, up.local_port), name, sampling),
                    )
                )
        return ir.ProxyConfig(
            node=node,
            mesh=self.mesh,
            inbound=tuple(inbound),
            outbound=tuple(outbound),
            clusters=tuple(clusters[name] for name in sorted(clusters)),
        )

    def outbound_listener(
        self, service_key: str, target: ServiceInfo, routing: ServiceRouting, port: int
    ) -> ir.OutboundListener:
        """The outbound listener towards a service on a local port (without tracing)."""
        cache, slot = self._outbound_cache, (service_key, port)
        hit = cache.get(slot) if cache is not None else None
        if hit is not None and hit[0] is routing:
            return hit[1]
        listener = _OUTBOUND.get((routing, port), partial(_outbound, target, routing, port))
        if cache is not None:
            cache[slot] = (routing, listener)
        return listener

    def _inbound_routes(self, service: str, svc: ServiceInfo, local_cluster: str) -> tuple[ir.Route, ...]:
        tp = self.resolved.traffic.get(service)
        try:
            return _rate_limited_routes(tp, svc, local_cluster, self.mesh.ratelimit_service is not None)
        except Exception as e:
            self.failures += 1
            assert tp is not None  # nothing to translate without a policy
            why = Violation("", f"translation failed: {type(e).__name__}: {e}; please report it")
            self.resolved.outcomes[key_of(tp)].reject(TRANSLATION_FAILED, why)
            return ()


def apply_routing_warnings(outcomes: dict[PolicyKey, PolicyOutcome], routing: ServiceRouting) -> None:
    """The warnings a service's routing found, on the outcomes of the policies involved (once each)."""
    for key, warning in routing.warnings:
        if warning not in outcomes[key].violations:
            outcomes[key].warn(warning)


def _outbound(svc: ServiceInfo, routing: ServiceRouting, port: int) -> ir.OutboundListener:
    tcp = svc.protocol == "tcp"
    return ir.OutboundListener(
        name=f"outbound|{port}|{svc.host}",
        address="127.0.0.1",
        port=port,
        protocol="tcp" if tcp else "http",
        service=svc.host,
        routes=() if tcp else routing.routes,
        tcp_cluster=routing.clusters[0].name if tcp else None,
        provenance=routing.clusters[0].provenance,
    )


def _rate_limited_routes(
    tp: TrafficPolicy | None, svc: ServiceInfo, local_cluster: str, with_global: bool = False
) -> tuple[ir.Route, ...]:
    """Inbound routes for rules with a rate limit: the limit protects each destination instance."""
    if tp is None:
        return ()
    out = []
    for i, rule in enumerate(tp.spec.rules):
        if rule.rate_limit is None:
            continue
        rl = rule.rate_limit
        limit = None
        if rl.max_tokens is not None:
            limit = ir.RateLimit(
                rl.max_tokens,
                rl.tokens_per_fill,
                duration_ms(rl.fill_interval),
                rl.response_status,
                rl.mode == "Shadow",
            )
        glob = None
        if rl.global_ is not None and with_global:
            glob = global_rate_limit(tp, rule.name or f"rule-{i}", rl.global_)
        for name, match in rule_matches(svc, rule, rule.name or f"rule-{i}"):
            out.append(
                ir.Route(
                    name=name,
                    match=match,
                    clusters=(ir.WeightedCluster(local_cluster, 100),),
                    rate_limit=limit,
                    global_rate_limit=glob,
                    provenance=provenance(tp),
                )
            )
    return tuple(out)
