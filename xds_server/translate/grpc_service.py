"""The cluster of a gRPC service every sidecar talks to (the rate-limit service, the tracing collector)."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from envoy_data_plane.envoy.config.cluster.v3 import Cluster, ClusterDiscoveryType
from envoy_data_plane.envoy.config.core.v3 import Http2ProtocolOptions
from envoy_data_plane.envoy.config.endpoint.v3 import ClusterLoadAssignment, LocalityLbEndpoints
from envoy_data_plane.envoy.extensions.upstreams.http.v3 import (
    HttpProtocolOptions,
    HttpProtocolOptionsExplicitHttpConfig,
)

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate import endpoint as _endpoint
from xds_server.translate._common import pack
from xds_server.translate._memo import memoize


@memoize(64)
def grpc_service_cluster(name: str, address: tuple[str, int]) -> Cluster:
    """HTTP/2 to ``host:port``: STATIC for an IP address, STRICT_DNS for a name; 1 s connect timeout."""
    host, port = address
    try:
        ipaddress.ip_address(host)
        kind = ClusterDiscoveryType.STATIC
    except ValueError:
        kind = ClusterDiscoveryType.STRICT_DNS
    h2 = new(
        HttpProtocolOptions,
        explicit_http_config=new(
            HttpProtocolOptionsExplicitHttpConfig, http2_protocol_options=new(Http2ProtocolOptions)
        ),
    )
    return new(
        Cluster,
        name=name,
        type=kind,
        connect_timeout=timedelta(seconds=1),
        typed_extension_protocol_options={"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": pack(h2)},
        load_assignment=new(
            ClusterLoadAssignment,
            cluster_name=name,
            endpoints=[new(LocalityLbEndpoints, lb_endpoints=[_endpoint.lb_endpoint(ir.Endpoint(host, port))])],
        ),
    )
