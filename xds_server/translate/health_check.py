"""Active health checks: HTTP (path + expected status ranges), TCP (connect) or gRPC (grpc.health.v1)."""

from __future__ import annotations

from envoy_data_plane.envoy.config.core.v3 import (
    HealthCheck,
    HealthCheckGrpcHealthCheck,
    HealthCheckHttpHealthCheck,
    HealthCheckTcpHealthCheck,
)
from envoy_data_plane.envoy.type.v3 import Int64Range

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate._common import ms


def health_check(h: ir.HealthCheck, host: str = "") -> HealthCheck:
    """``host``: the Host header (gRPC: authority) of checks, the service's name. Envoy's default is the cluster
    name, which contains ``|`` (not a valid authority): the destination's sidecar answered every check with 400."""
    msg = new(
        HealthCheck,
        timeout=ms(h.timeout_ms),
        interval=ms(h.interval_ms),
        # Envoy checks a cluster that has carried no traffic yet only every 60 s (its ``no_traffic_interval``
        # default), so a host that failed a check during start-up stayed out of rotation for a minute. The policy
        # says "check every interval": do so from the start.
        no_traffic_interval=ms(h.interval_ms),
        healthy_threshold=h.healthy_threshold,
        unhealthy_threshold=h.unhealthy_threshold,
        # Spread checks of many sidecars so they do not hit a service in lockstep.
        interval_jitter_percent=10,
    )
    if h.kind == "http":
        msg.http_health_check = new(
            HealthCheckHttpHealthCheck,
            path=h.path,
            host=host,
            expected_statuses=[new(Int64Range, start=s, end=e) for s, e in h.expected_statuses],
        )
    elif h.kind == "grpc":
        msg.grpc_health_check = new(HealthCheckGrpcHealthCheck, service_name=h.grpc_service, authority=host)
    else:
        msg.tcp_health_check = new(HealthCheckTcpHealthCheck)
    return msg
