"""Global rate limits (``envoy.filters.http.ratelimit``) on the inbound chain, against the mesh's rate-limit service.

Each limited route carries ``rate_limits`` whose actions build the descriptor the service counts (see
:mod:`mesh_operator.translate.ratelimit_global` for the entries). Envoy's filter settings (failure mode, enforcement)
are per filter, not per route, so the inbound chain has one filter per combination in use, told apart by
``stage``: ``stage = 2 * failure_deny + shadow``. Within one stage the largest timeout and the first status (in
route order) apply.

* failure mode ``Allow`` (Envoy's default, fail open): when the service cannot answer in time, requests pass;
  ``Deny``: they get 500 (``failure_mode_deny``).
* Shadow: ``filter_enforced`` 0 %: the service counts and answers OVER_LIMIT, Envoy counts ``ratelimit.over_limit``
  and serves the request.

The filter sits after RBAC and the local rate limit: a request refused locally never spends the shared budget.
"""

from __future__ import annotations

from typing import Final

from envoy_data_plane.envoy.config.cluster.v3 import Cluster
from envoy_data_plane.envoy.config.core.v3 import ApiVersion, GrpcService, GrpcServiceEnvoyGrpc
from envoy_data_plane.envoy.config.ratelimit.v3 import RateLimitServiceConfig
from envoy_data_plane.envoy.config.route.v3 import (
    RateLimit,
    RateLimitAction,
    RateLimitActionGenericKey,
    RateLimitActionRemoteAddress,
    RateLimitActionRequestHeaders,
)
from envoy_data_plane.envoy.extensions.filters.http.ratelimit.v3 import RateLimit as RateLimitFilter
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import HttpFilter
from envoy_data_plane.envoy.type.v3 import HttpStatus, StatusCode

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate._common import ms, pack, runtime_fraction
from xds_server.translate._memo import memoize
from xds_server.translate.grpc_service import grpc_service_cluster

FILTER_NAME: Final = "envoy.filters.http.ratelimit"
CLUSTER: Final = "meshwork_ratelimit"
DOMAIN: Final = "meshwork"
STAT_PREFIX: Final = "meshwork_global_rate_limit"
#: The header the inbound side sets to the verified peer's SPIFFE ID (``SANITIZE_SET``, see :mod:`.hcm`).
SOURCE_IDENTITY_HEADER: Final = "x-forwarded-client-cert"


def stage_of(g: ir.GlobalRateLimit) -> int:
    return 2 * int(g.failure_deny) + int(g.shadow)


def _action(kind: str, name: str) -> RateLimitAction:
    if kind == "header":
        return new(
            RateLimitAction,
            request_headers=new(RateLimitActionRequestHeaders, header_name=name, descriptor_key=f"header_{name}"),
        )
    if kind == "source_identity":
        return new(
            RateLimitAction,
            request_headers=new(
                RateLimitActionRequestHeaders, header_name=SOURCE_IDENTITY_HEADER, descriptor_key="source_identity"
            ),
        )
    return new(RateLimitAction, remote_address=new(RateLimitActionRemoteAddress))


def route_rate_limits(g: ir.GlobalRateLimit) -> list[RateLimit]:
    stage = stage_of(g)
    return [
        new(
            RateLimit,
            stage=stage,
            actions=[
                new(
                    RateLimitAction,
                    generic_key=new(RateLimitActionGenericKey, descriptor_key="descriptor", descriptor_value=d.key),
                ),
                *(_action(kind, name) for kind, name in d.entries),
            ],
        )
        for d in g.descriptors
    ]


@memoize(4096)
def http_filters(routes: tuple[ir.Route, ...]) -> tuple[HttpFilter, ...]:
    """One ratelimit filter per stage in use on these routes, by stage."""
    by_stage: dict[int, list[ir.GlobalRateLimit]] = {}
    for r in routes:
        if r.global_rate_limit is not None:
            by_stage.setdefault(stage_of(r.global_rate_limit), []).append(r.global_rate_limit)
    out = []
    for stage, limits in sorted(by_stage.items()):
        first = limits[0]
        cfg = new(
            RateLimitFilter,
            domain=DOMAIN,
            stage=stage,
            timeout=ms(max(g.timeout_ms for g in limits)),
            failure_mode_deny=first.failure_deny,
            rate_limited_status=new(HttpStatus, code=StatusCode(first.status)),
            stat_prefix=f"{STAT_PREFIX}{'_shadow' if first.shadow else ''}",
            filter_enforced=runtime_fraction(0.0 if first.shadow else 100.0, "meshwork.global_rate_limit.enforced"),
            rate_limit_service=new(
                RateLimitServiceConfig,
                grpc_service=new(
                    GrpcService,
                    envoy_grpc=new(GrpcServiceEnvoyGrpc, cluster_name=CLUSTER),
                    timeout=ms(max(g.timeout_ms for g in limits)),
                ),
                transport_api_version=ApiVersion.V3,
            ),
        )
        out.append(new(HttpFilter, name=f"{FILTER_NAME}.stage{stage}", typed_config=pack(cfg)))
    return tuple(out)


def needs_service(cfg: ir.ProxyConfig) -> bool:
    return any(r.global_rate_limit is not None for il in cfg.inbound for r in il.routes)


def clusters(cfg: ir.ProxyConfig) -> tuple[Cluster, ...]:
    """The rate-limit service's cluster, when this proxy enforces a global limit."""
    if cfg.mesh.ratelimit_service is None or not needs_service(cfg):
        return ()
    return (grpc_service_cluster(CLUSTER, cfg.mesh.ratelimit_service),)
