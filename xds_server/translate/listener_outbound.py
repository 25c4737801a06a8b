"""Outbound listeners: the app talks plaintext to ``127.0.0.1:<port>``; the sidecar routes and originates mTLS.

HTTP filter order: ``fault`` then ``router``. Fault injection must sit before the router (it delays or aborts the
request before it is forwarded); the router is always last because it is the terminal filter that sends the
request upstream.
"""

from __future__ import annotations

from envoy_data_plane.envoy.config.core.v3 import Address, SocketAddress, TrafficDirection
from envoy_data_plane.envoy.config.listener.v3 import Filter, FilterChain, Listener
from envoy_data_plane.envoy.config.route.v3 import RouteConfiguration
from envoy_data_plane.envoy.extensions.filters.network.tcp_proxy.v3 import TcpProxy

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate import access_log, cors, fault, hcm, route, tracing
from xds_server.translate._common import BUFFER_LIMIT_BYTES, pack, stat_token
from xds_server.translate._memo import memoize
from xds_server.translate.metadata import metadata

ClusterHashes = tuple[tuple[str, tuple[ir.HashPolicy, ...]], ...]


def _extra_hash(r: ir.Route, cluster_hashes: ClusterHashes) -> tuple[ir.HashPolicy, ...]:
    """Hash policies a consistent-hash cluster asks for, when the route does not set its own."""
    if r.hash_on or not cluster_hashes:
        return ()
    by_name = dict(cluster_hashes)
    for wc in r.clusters:
        if by_name.get(wc.cluster):
            return by_name[wc.cluster]
    return ()


def address(host: str, port: int) -> Address:
    return new(Address, socket_address=new(SocketAddress, address=host, port_value=port))


def route_config(listener: ir.OutboundListener, cluster_hashes: ClusterHashes = ()) -> RouteConfiguration:
    routes = [route.outbound_route(r, _extra_hash(r, cluster_hashes)) for r in listener.routes]
    return route.route_configuration(listener.name, routes)


def listener(lis: ir.OutboundListener, mesh: ir.MeshSettings) -> Listener:
    prefix = stat_token(lis.name)
    filters: list[Filter]
    if lis.protocol == "http":
        manager = hcm.connection_manager(
            direction="outbound",
            stat_prefix=prefix,
            route_config_name=lis.name,
            http_filters=[*cors.http_filters(lis.routes), fault.http_filter(), hcm.router()],
            access_log=access_log.access_logs(mesh.access_log, "http"),
            tracing=tracing.hcm_tracing(mesh.tracing, lis.trace_service or lis.service, tracing.outbound_percent(lis))
            if mesh.tracing is not None
            else None,
        )
        filters = [hcm.network_filter(manager)]
    else:
        proxy = new(
            TcpProxy,
            stat_prefix=prefix,
            cluster=lis.tcp_cluster or "",
            access_log=list(access_log.access_logs(mesh.access_log, "tcp")),
        )
        filters = [new(Filter, name="envoy.filters.network.tcp_proxy", typed_config=pack(proxy))]
    return new(
        Listener,
        name=lis.name,
        address=address(lis.address, lis.port),
        bind_to_port=None if lis.bind else False,
        traffic_direction=TrafficDirection.OUTBOUND,
        filter_chains=[new(FilterChain, filters=filters)],
        per_connection_buffer_limit_bytes=BUFFER_LIMIT_BYTES,
        metadata=metadata([*lis.provenance, *(r.provenance for r in lis.routes)], service=lis.service),
    )


@memoize(65_536)
def resources(
    lis: ir.OutboundListener, mesh: ir.MeshSettings, cluster_hashes: ClusterHashes = ()
) -> tuple[Listener, RouteConfiguration | None]:
    """The listener and (HTTP only) its route configuration, memoized together on the IR listener."""
    return listener(lis, mesh), route_config(lis, cluster_hashes) if lis.protocol == "http" else None
