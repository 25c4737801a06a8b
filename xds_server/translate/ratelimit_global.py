"""Global rate limits (``envoy.filters.http.ratelimit``) on the inbound chain, against the mesh's rate-limit service.

Each limited route carries ``rate_limits`` whose actions build the descriptor the service counts (see
:mod:`mesh_operator.translate.ratelimit_global` for the entries). Envoy's filter settings (failure mode, enforcement)
are per filter, not per route, so the inbound chain has one filter per combination in use, told apart by
``stage``: ``stage = 2 * failure_deny + shadow``. Within one stage the largest timeout and the first status (in
route order) apply.

* failure mode ``Allow`` (Envoy's default, fail open): when the service cannot answer in time, requests pass;
  ``Deny``: they get 500 (``failure_mode_deny``).
* Shadow: ``filter_enforced`` 0 %: the service counts and answers OVER_LIMIT, Envoy serves the request and counts
  it under a prefix naming the policy:
  ``cluster.<inbound cluster>.ratelimit.meshwork_global_rate_limit_shadow_<kind>_<namespace>_<name>.over_limit``;
  the access log's ``global_rate_limit_shadow`` names the policy on exactly
  those requests (see :mod:`.ratelimit_global_shadow`). Enforced filters come first, then the shadow block.

A service has one TrafficPolicy, so the routes of one inbound listener name one policy; should they ever name more,
a shadowed stage names them all (sorted, comma-separated).

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
from xds_server.translate import ratelimit_global_shadow
from xds_server.translate._common import ms, pack, runtime_fraction, stat_token
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


def _filter(stage: int, limits: list[ir.GlobalRateLimit], policy: str) -> HttpFilter:
    first = limits[0]
    timeout = ms(max(g.timeout_ms for g in limits))
    prefix = f"{STAT_PREFIX}_shadow_{stat_token(policy.lower())}" if first.shadow else STAT_PREFIX
    cfg = new(
        RateLimitFilter,
        domain=DOMAIN,
        stage=stage,
        timeout=timeout,
        failure_mode_deny=first.failure_deny,
        rate_limited_status=new(HttpStatus, code=StatusCode(first.status)),
        stat_prefix=prefix,
        filter_enforced=runtime_fraction(0.0 if first.shadow else 100.0, "meshwork.global_rate_limit.enforced"),
        rate_limit_service=new(
            RateLimitServiceConfig,
            grpc_service=new(GrpcService, envoy_grpc=new(GrpcServiceEnvoyGrpc, cluster_name=CLUSTER), timeout=timeout),
            transport_api_version=ApiVersion.V3,
        ),
    )
    return new(HttpFilter, name=f"{FILTER_NAME}.stage{stage}", typed_config=pack(cfg))


@memoize(4096)
def http_filters(routes: tuple[ir.Route, ...]) -> tuple[HttpFilter, ...]:
    """The ratelimit filters for these routes: one per enforced stage in use, then the shadow block (one per
    shadowed stage, each named by :func:`.ratelimit_global_shadow.namer`), by stage."""
    by_stage: dict[int, list[ir.GlobalRateLimit]] = {}
    policies: dict[int, set[str]] = {}
    for r in routes:
        if r.global_rate_limit is not None:
            stage = stage_of(r.global_rate_limit)
            by_stage.setdefault(stage, []).append(r.global_rate_limit)
            policies.setdefault(stage, set()).add(r.provenance.policy if r.provenance else "unknown")
    enforced = [_filter(s, ls, "") for s, ls in sorted(by_stage.items()) if not ls[0].shadow]
    shadowed = []
    for stage, limits in sorted(by_stage.items()):
        if limits[0].shadow:
            policy = ",".join(sorted(policies[stage]))
            shadowed += [ratelimit_global_shadow.namer(stage, policy), _filter(stage, limits, policy)]
    if shadowed:
        shadowed = [ratelimit_global_shadow.restore(), *shadowed, ratelimit_global_shadow.stash()]
    return (*enforced, *shadowed)


def needs_service(cfg: ir.ProxyConfig) -> bool:
    return any(r.global_rate_limit is not None for il in cfg.inbound for r in il.routes)


def clusters(cfg: ir.ProxyConfig) -> tuple[Cluster, ...]:
    """The rate-limit service's cluster, when this proxy enforces a global limit."""
    if cfg.mesh.ratelimit_service is None or not needs_service(cfg):
        return ()
    return (grpc_service_cluster(CLUSTER, cfg.mesh.ratelimit_service),)
