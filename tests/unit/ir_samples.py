"""Hand-built IR for the xDS translation tests: a RICH proxy config using every IR feature, and a MINIMAL one.

Import as a module (``from tests.unit import ir_samples`` or via importlib by path); nothing here is a test.
"""

from __future__ import annotations

from xds_server import ir

TD = "cluster.local"


def spiffe(ns: str, sa: str) -> str:
    return f"spiffe://{TD}/ns/{ns}/sa/{sa}"


P_TRAFFIC = ir.Provenance("TrafficPolicy", "shop", "reviews-split", 3)
P_RETRY = ir.Provenance("RetryPolicy", "shop", "reviews-retry", 1)
P_FAULT = ir.Provenance("FaultPolicy", "shop", "ratings-chaos", 2)
P_DENY = ir.Provenance("AccessPolicy", "shop", "deny-admin", 5)
P_ALLOW = ir.Provenance("AccessPolicy", "shop", "allow-frontend", 7)
P_SHADOW = ir.Provenance("AccessPolicy", "shop", "try-lockdown", 1)
P_RATE = ir.Provenance("RateLimitPolicy", "shop", "reviews-rl", 4)
P_CB = ir.Provenance("ClusterPolicy", "shop", "ratings-cb", 2)

NODE = ir.NodeInfo(
    id="shop/reviews",
    namespace="shop",
    workload="reviews",
    service_account="reviews",
    spiffe_id=spiffe("shop", "reviews"),
    region="eu-west",
    zone="eu-west-1a",
)


def _endpoints(base: str, n: int = 3) -> tuple[ir.Endpoint, ...]:
    zones = (("eu-west", "eu-west-1a"), ("eu-west", "eu-west-1b"), ("us-east", "us-east-1a"))
    return tuple(
        ir.Endpoint(
            f"{base}.{i + 1}",
            8080,
            region=zones[i % 3][0],
            zone=zones[i % 3][1],
            weight=1 + i,
            instance=f"shop/pod-{i}",
        )
        for i in range(n)
    )


def upstream_tls(service: str, sa: str) -> ir.UpstreamTls:
    return ir.UpstreamTls(sni=f"{service}.svc", peer_spiffe_ids=(spiffe("shop", sa),))


LOCAL = ir.Cluster(
    name="inbound|8080|local",
    service="reviews.shop",
    endpoints=(ir.Endpoint("127.0.0.1", 18080, instance="shop/reviews"),),
    connect_timeout_ms=1000,
)
RATINGS_V1 = ir.Cluster(
    name="outbound|8080|v1|ratings.shop",
    service="ratings.shop",
    endpoints=_endpoints("10.0.1"),
    protocol="http2",
    lb=ir.LoadBalancer(kind="least_request", locality_aware=True),
    circuit_breakers=ir.CircuitBreakers(
        max_connections=100,
        max_pending_requests=50,
        max_requests=200,
        max_retries=3,
        retry_budget=ir.RetryBudget(percent=20.0, min_retry_concurrency=3),
    ),
    outlier=ir.OutlierDetection(consecutive_5xx=3, consecutive_gateway_errors=2, interval_ms=5000),
    health_check=ir.HealthCheck(kind="grpc", interval_ms=5000, timeout_ms=1000, grpc_service="ratings"),
    tls=upstream_tls("ratings", "ratings"),
    provenance=(P_CB,),
)
RATINGS_V2 = ir.Cluster(
    name="outbound|8080|v2|ratings.shop",
    service="ratings.shop",
    endpoints=_endpoints("10.0.2", 2),
    lb=ir.LoadBalancer(kind="ring_hash", hash_on=(ir.HashPolicy("header", "x-user"),)),
    health_check=ir.HealthCheck(
        kind="http", interval_ms=10_000, timeout_ms=2000, path="/healthz", expected_statuses=((200, 300), (404, 405))
    ),
    tls=upstream_tls("ratings", "ratings"),
)
RATINGS_MIRROR = ir.Cluster(
    name="outbound|8080|shadow|ratings.shop",
    service="ratings-shadow.shop",
    endpoints=_endpoints("10.0.3", 1),
    lb=ir.LoadBalancer(kind="maglev"),
    health_check=ir.HealthCheck(kind="tcp", interval_ms=10_000, timeout_ms=1000),
    tls=upstream_tls("ratings-shadow", "ratings"),
)
DB = ir.Cluster(
    name="outbound|5432||db.shop",
    service="db.shop",
    endpoints=_endpoints("10.0.4", 2),
    protocol="tcp",
    lb=ir.LoadBalancer(kind="random"),
    tls=upstream_tls("db", "db"),
)
DETAILS = ir.Cluster(
    name="outbound|8080||details.shop",
    service="details.shop",
    endpoints=_endpoints("10.0.5", 2),
    lb=ir.LoadBalancer(kind="round_robin"),
    tls=upstream_tls("details", "details"),
)

RATINGS_ROUTES = (
    ir.Route(
        name="ratings-split",
        match=ir.RouteMatch(
            path=ir.PathMatch("prefix", "/api/"),
            method="GET",
            headers=(
                ir.HeaderMatch("x-env", "exact", "canary"),
                ir.HeaderMatch("x-trace", "present"),
                ir.HeaderMatch("x-user", "prefix", "test-"),
                ir.HeaderMatch("x-debug", "regex", "^[0-9]+$", invert=True),
            ),
            query=(
                ir.QueryMatch("v", "exact", "2"),
                ir.QueryMatch("q", "regex", "^[a-z]+$"),
                ir.QueryMatch("debug", "present"),
            ),
        ),
        clusters=(ir.WeightedCluster(RATINGS_V1.name, 90), ir.WeightedCluster(RATINGS_V2.name, 10)),
        mirrors=(ir.Mirror(RATINGS_MIRROR.name, 12.5),),
        request_headers=ir.HeaderEdits(set=(("x-mesh", "meshwork"),), add=(("x-hop", "1"),), remove=("x-internal",)),
        response_headers=ir.HeaderEdits(set=(("x-served-by", "ratings"),), remove=("server",)),
        path_rewrite=("prefix", "/v2/api/"),
        host_rewrite="ratings.internal",
        timeout_ms=3000,
        idle_timeout_ms=60_000,
        retry=ir.Retry(
            attempts=3,
            retry_on=("5xx", "reset", "connect-failure"),
            retriable_status_codes=(503, 429),
            per_try_timeout_ms=1000,
            backoff_base_ms=25,
            backoff_max_ms=250,
            provenance=P_RETRY,
        ),
        hash_on=(ir.HashPolicy("cookie", "session", cookie_ttl_ms=3_600_000), ir.HashPolicy("source_ip")),
        provenance=P_TRAFFIC,
    ),
    ir.Route(
        name="ratings-exact",
        match=ir.RouteMatch(path=ir.PathMatch("exact", "/health")),
        clusters=(ir.WeightedCluster(RATINGS_V2.name, 1),),
        path_rewrite=("full", "/healthz"),
        fault=ir.Fault(delay_ms=200, delay_percent=10.0, abort_status=503, abort_percent=0.5),
        provenance=P_FAULT,
    ),
    ir.Route(
        name="ratings-regex",
        match=ir.RouteMatch(path=ir.PathMatch("regex", "^/items/[0-9]+$")),
        clusters=(ir.WeightedCluster(RATINGS_V2.name, 1),),
    ),
    ir.Route(
        name="ratings-old",
        match=ir.RouteMatch(path=ir.PathMatch("prefix", "/old/")),
        redirect=ir.Redirect(scheme="https", host="ratings.example", port=8443, prefix="/new/", status=301),
    ),
    ir.Route(
        name="ratings-moved",
        match=ir.RouteMatch(path=ir.PathMatch("exact", "/moved")),
        redirect=ir.Redirect(path="/here", status=308),
    ),
    ir.Route(
        name="ratings-default",
        match=ir.RouteMatch(),
        clusters=(ir.WeightedCluster(RATINGS_V1.name, 1),),
    ),
)

RBAC = (
    ir.RbacPolicy(
        provenance=P_DENY,
        action="deny",
        rules=(
            ir.AccessRule(
                name="no-admin",
                principals=(ir.Principal(any=True),),
                requests=(
                    ir.RequestMatch(paths=(ir.PathMatch("prefix", "/admin"),)),
                    ir.RequestMatch(
                        methods=("DELETE", "PUT"),
                        headers=(ir.HeaderMatch("x-override", "present"),),
                    ),
                ),
            ),
        ),
    ),
    ir.RbacPolicy(
        provenance=P_ALLOW,
        action="allow",
        rules=(
            ir.AccessRule(
                name="frontend-reads",
                principals=(ir.Principal(spiffe_exact=spiffe("shop", "frontend")),),
                requests=(
                    ir.RequestMatch(
                        paths=(
                            ir.PathMatch("prefix", "/api/"),
                            ir.PathMatch("exact", "/"),
                            ir.PathMatch("regex", "^/r/[a-z]+$"),
                        ),
                        methods=("GET", "HEAD"),
                        headers=(ir.HeaderMatch("x-tenant", "exact", "shop"),),
                    ),
                ),
            ),
            ir.AccessRule(name="ops-anything", principals=(ir.Principal(spiffe_prefix=f"spiffe://{TD}/ns/ops/"),)),
        ),
    ),
    ir.RbacPolicy(
        provenance=P_SHADOW,
        action="allow",
        shadow=True,
        rules=(
            ir.AccessRule(name="only-frontend", principals=(ir.Principal(spiffe_exact=spiffe("shop", "frontend")),)),
        ),
    ),
)

INBOUND_HTTP = ir.InboundListener(
    name="inbound|8080",
    address="0.0.0.0",
    port=15006,
    protocol="http",
    local_cluster=LOCAL.name,
    tls=ir.InboundTls("strict"),
    rbac=RBAC,
    routes=(
        ir.Route(
            name="reviews-write-limit",
            match=ir.RouteMatch(path=ir.PathMatch("prefix", "/api/"), method="POST"),
            rate_limit=ir.RateLimit(max_tokens=10, tokens_per_fill=5, fill_interval_ms=1000, status=429),
            timeout_ms=5000,
            provenance=P_RATE,
        ),
    ),
)
INBOUND_TCP = ir.InboundListener(
    name="inbound|9000",
    address="0.0.0.0",
    port=15007,
    protocol="tcp",
    local_cluster=LOCAL.name,
    tls=ir.InboundTls("permissive"),
    rbac=RBAC,
)
INBOUND_PERMISSIVE_HTTP = ir.InboundListener(
    name="inbound|8081",
    address="0.0.0.0",
    port=15008,
    protocol="http",
    local_cluster=LOCAL.name,
    tls=ir.InboundTls("permissive"),
)

OUT_RATINGS = ir.OutboundListener(
    name="outbound|8080||ratings.shop",
    address="127.0.0.1",
    port=18081,
    protocol="http",
    service="ratings.shop",
    routes=RATINGS_ROUTES,
    provenance=(P_TRAFFIC,),
)
OUT_DETAILS = ir.OutboundListener(
    name="outbound|8080||details.shop",
    address="127.0.0.1",
    port=18082,
    protocol="http",
    service="details.shop",
    routes=(
        ir.Route(name="details-default", match=ir.RouteMatch(), clusters=(ir.WeightedCluster(DETAILS.name, 1),)),
        ir.Route(
            name="details-hashed",
            match=ir.RouteMatch(path=ir.PathMatch("prefix", "/sticky")),
            clusters=(ir.WeightedCluster(RATINGS_V2.name, 1),),
        ),
    ),
)
OUT_DB = ir.OutboundListener(
    name="outbound|5432||db.shop",
    address="127.0.0.1",
    port=15432,
    protocol="tcp",
    service="db.shop",
    tcp_cluster=DB.name,
)

RICH = ir.ProxyConfig(
    node=NODE,
    mesh=ir.MeshSettings(
        trust_domain=TD,
        mtls_mode="strict",
        access_log=ir.AccessLogSettings(enabled=True, format="json", path="/dev/stdout"),
    ),
    inbound=(INBOUND_HTTP, INBOUND_TCP, INBOUND_PERMISSIVE_HTTP),
    outbound=(OUT_RATINGS, OUT_DETAILS, OUT_DB),
    clusters=(LOCAL, RATINGS_V1, RATINGS_V2, RATINGS_MIRROR, DB, DETAILS),
)

#: The same, with a text access log (both formats must be accepted by Envoy).
RICH_TEXT_LOG = ir.ProxyConfig(
    node=NODE,
    mesh=ir.MeshSettings(trust_domain=TD, access_log=ir.AccessLogSettings(format="text")),
    inbound=RICH.inbound,
    outbound=RICH.outbound,
    clusters=RICH.clusters,
)

MINIMAL = ir.ProxyConfig(
    node=ir.NodeInfo(
        id="default/app", namespace="default", workload="app", service_account="app", spiffe_id=spiffe("default", "app")
    ),
    mesh=ir.MeshSettings(access_log=ir.AccessLogSettings(enabled=False)),
    inbound=(),
    outbound=(),
    clusters=(),
)


def mesh_of(n_services: int, routes_per_service: int = 5, *, generation: int = 1) -> ir.ProxyConfig:
    """A proxy that talks to ``n_services`` services, each with its own listener, routes and two clusters."""
    outbound = []
    clusters = []
    for i in range(n_services):
        svc = f"svc-{i}.ns-{i % 50}"
        c1 = ir.Cluster(
            name=f"outbound|8080|v1|{svc}",
            service=svc,
            endpoints=tuple(ir.Endpoint(f"10.{i // 250}.{i % 250}.{k + 1}", 8080, zone=f"z{k}") for k in range(3)),
            tls=ir.UpstreamTls(sni=svc, peer_spiffe_ids=(spiffe(f"ns-{i % 50}", f"svc-{i}"),)),
            circuit_breakers=ir.CircuitBreakers(retry_budget=ir.RetryBudget(20.0, 3)),
            outlier=ir.OutlierDetection(),
        )
        c2 = ir.Cluster(name=f"outbound|8080|v2|{svc}", service=svc, endpoints=c1.endpoints[:1], tls=c1.tls)
        prov = ir.Provenance("TrafficPolicy", f"ns-{i % 50}", f"svc-{i}", generation if i == 0 else 1)
        routes = tuple(
            ir.Route(
                name=f"{svc}-r{j}",
                match=ir.RouteMatch(
                    path=ir.PathMatch("prefix", f"/p{j}/"), headers=(ir.HeaderMatch("x-v", "exact", "2"),)
                ),
                clusters=(ir.WeightedCluster(c1.name, 90), ir.WeightedCluster(c2.name, 10)),
                retry=ir.Retry(attempts=2, retry_on=("5xx",), per_try_timeout_ms=500),
                timeout_ms=1000 * (j + 1) + (generation if i == 0 else 0),
                provenance=prov,
            )
            for j in range(routes_per_service)
        )
        outbound.append(
            ir.OutboundListener(
                name=f"outbound|8080||{svc}",
                address="127.0.0.1",
                port=20000 + i,
                protocol="http",
                service=svc,
                routes=routes,
                provenance=(prov,),
            )
        )
        clusters += [c1, c2]
    return ir.ProxyConfig(
        node=NODE,
        mesh=ir.MeshSettings(),
        inbound=(INBOUND_HTTP,),
        outbound=tuple(outbound),
        clusters=(LOCAL, *clusters),
    )
