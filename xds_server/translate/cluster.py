"""Upstream clusters: EDS over ADS, load balancing, circuit breaking, outlier detection, health checks, mTLS.

Retry budget: Envoy's ``retry_budget`` replaces ``max_retries`` when set (retries in flight limited to a
percentage of active requests, with a floor of ``min_retry_concurrency``).
"""

from __future__ import annotations

from typing import Final

from envoy_data_plane.envoy.config.cluster.v3 import (
    CircuitBreakers,
    CircuitBreakersThresholds,
    CircuitBreakersThresholdsRetryBudget,
    Cluster,
    ClusterCommonLbConfig,
    ClusterCommonLbConfigLocalityWeightedLbConfig,
    ClusterDiscoveryType,
    ClusterEdsClusterConfig,
    ClusterLbPolicy,
)
from envoy_data_plane.envoy.config.core.v3 import Http2ProtocolOptions, TransportSocket
from envoy_data_plane.envoy.config.endpoint.v3 import ClusterLoadAssignment
from envoy_data_plane.envoy.extensions.upstreams.http.v3 import (
    HttpProtocolOptions,
    HttpProtocolOptionsExplicitHttpConfig,
)
from envoy_data_plane.envoy.type.v3 import Percent
from envoy_data_plane.google.protobuf import Any

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate._common import BUFFER_LIMIT_BYTES, ads, ms, pack, transport_socket
from xds_server.translate._memo import memoize
from xds_server.translate._shared import shared
from xds_server.translate.endpoint import load_assignment
from xds_server.translate.health_check import health_check
from xds_server.translate.metadata import metadata, stat_name
from xds_server.translate.outlier import outlier_detection
from xds_server.translate.tls import upstream

HTTP_PROTOCOL_OPTIONS: Final = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

_LB = {
    "round_robin": ClusterLbPolicy.ROUND_ROBIN,
    "least_request": ClusterLbPolicy.LEAST_REQUEST,
    "ring_hash": ClusterLbPolicy.RING_HASH,
    "maglev": ClusterLbPolicy.MAGLEV,
    "random": ClusterLbPolicy.RANDOM,
}


def circuit_breakers(cb: ir.CircuitBreakers) -> CircuitBreakers:
    """Shared (one object per settings, see ``_shared``): never mutate it."""
    return _circuit_breakers(cb, repr(cb.retry_budget.percent) if cb.retry_budget is not None else "")


@shared(4_096)
def _circuit_breakers(cb: ir.CircuitBreakers, _percent: str) -> CircuitBreakers:
    """``_percent``: the float's repr, so that 20 and 20.0 (equal as keys) get their own messages."""
    budget = None
    if cb.retry_budget is not None:
        budget = new(
            CircuitBreakersThresholdsRetryBudget,
            budget_percent=new(Percent, value=cb.retry_budget.percent),
            min_retry_concurrency=cb.retry_budget.min_retry_concurrency,
        )
    return new(
        CircuitBreakers,
        thresholds=[
            new(
                CircuitBreakersThresholds,
                max_connections=cb.max_connections,
                max_pending_requests=cb.max_pending_requests,
                max_requests=cb.max_requests,
                max_retries=cb.max_retries,
                retry_budget=budget,
                track_remaining=True,
            )
        ],
    )


@shared(65_536)
def _upstream_socket(tls: ir.UpstreamTls, mesh: ir.MeshSettings, http2: bool) -> TransportSocket:
    """Shared (the subsets of a service and the service's cluster present the same identity): never mutate it."""
    return transport_socket(upstream(tls, mesh, http2))


def http2_options() -> dict[str, Any]:
    """Speak HTTP/2 to the upstream (``typed_extension_protocol_options``, the v3 way)."""
    opts = new(
        HttpProtocolOptions,
        explicit_http_config=new(
            HttpProtocolOptionsExplicitHttpConfig,
            http2_protocol_options=new(Http2ProtocolOptions, max_concurrent_streams=1024),
        ),
    )
    return {HTTP_PROTOCOL_OPTIONS: pack(opts)}


def cluster(c: ir.Cluster, mesh: ir.MeshSettings) -> Cluster:
    http2 = c.protocol == "http2"
    return new(
        Cluster,
        name=c.name,
        alt_stat_name=stat_name(c.name) if "." in c.name else "",
        type=ClusterDiscoveryType.EDS,
        eds_cluster_config=new(ClusterEdsClusterConfig, eds_config=ads(), service_name=c.name),
        connect_timeout=ms(c.connect_timeout_ms),
        lb_policy=_LB[c.lb.kind],
        common_lb_config=(
            new(ClusterCommonLbConfig, locality_weighted_lb_config=new(ClusterCommonLbConfigLocalityWeightedLbConfig))
            if c.lb.locality_aware
            else None
        ),
        circuit_breakers=circuit_breakers(c.circuit_breakers),
        outlier_detection=outlier_detection(c.outlier) if c.outlier is not None else None,
        health_checks=[health_check(c.health_check, c.service)] if c.health_check is not None else [],
        transport_socket=_upstream_socket(c.tls, mesh, http2) if c.tls is not None else None,
        typed_extension_protocol_options=http2_options() if http2 else {},
        per_connection_buffer_limit_bytes=BUFFER_LIMIT_BYTES,
        metadata=metadata(c.provenance, service=c.service),
    )


@memoize(65_536)
def resources(
    c: ir.Cluster, mesh: ir.MeshSettings, region: str = "", zone: str = ""
) -> tuple[Cluster, ClusterLoadAssignment]:
    """The cluster and its load assignment. ``region``/``zone``: the proxy's own, only for locality-aware LB."""
    return cluster(c, mesh), load_assignment(c, region, zone)
