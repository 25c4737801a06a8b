"""Transparent mode (see :mod:`xds_server.ir.transparent`): the capture listeners and their clusters.

* ``outbound`` – ``127.0.0.1:<capture port>`` with ``use_original_dst``: Envoy hands each connection to the
  listener bound (``bind_to_port: false``) to its original ``ClusterIP:port``, else to ``0.0.0.0:port`` (Host
  routing), else keeps it: its one chain proxies TCP to ``passthrough`` (ORIGINAL_DST: the address the app
  dialed) or, under ``registry_only``, to ``blackhole`` (no endpoints: the connection is closed).
  iptables REDIRECT from OUTPUT lands on 127.0.0.1, so the capture listener binds loopback only.
* ``outbound|<port>`` – ``0.0.0.0:port`` (not bound): a virtual host per HTTP service on that port, domains every
  name a caller may use; a last ``*`` host passes through (or answers 502 under ``registry_only``).
* ``inbound`` – ``0.0.0.0:<capture port>`` with the ``original_dst`` listener filter (so chains match the port
  the peer dialed) and a chain per served port, each exactly the chain(s) of the local-mode inbound listener
  (STRICT mTLS, RBAC, rate limits). A connection to any other port matches no chain and is closed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from envoy_data_plane.envoy.config.cluster.v3 import Cluster, ClusterDiscoveryType, ClusterLbPolicy
from envoy_data_plane.envoy.config.core.v3 import DataSource, TrafficDirection
from envoy_data_plane.envoy.config.endpoint.v3 import ClusterLoadAssignment
from envoy_data_plane.envoy.config.listener.v3 import Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter
from envoy_data_plane.envoy.config.route.v3 import (
    DirectResponseAction,
    Route,
    RouteAction,
    RouteConfiguration,
    RouteMatch,
    VirtualHost,
)
from envoy_data_plane.envoy.extensions.filters.listener.original_dst.v3 import OriginalDst
from envoy_data_plane.envoy.extensions.filters.listener.tls_inspector.v3 import TlsInspector
from envoy_data_plane.envoy.extensions.filters.network.tcp_proxy.v3 import TcpProxy

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate import access_log, cors, fault, hcm, route
from xds_server.translate import listener_inbound as _inbound
from xds_server.translate._common import BUFFER_LIMIT_BYTES, ms, pack
from xds_server.translate._memo import memoize
from xds_server.translate.listener_outbound import ClusterHashes, _extra_hash, address
from xds_server.translate.metadata import stat_name

OUTBOUND: Final = "outbound"
INBOUND: Final = "inbound"
PASSTHROUGH: Final = "passthrough"
BLACKHOLE: Final = "blackhole"
ORIGINAL_DST_FILTER: Final = "envoy.filters.listener.original_dst"
REGISTRY_ONLY_BODY: Final = "meshwork: destination is not in the mesh (outboundTrafficPolicy: RegistryOnly)\n"


def _tcp_chain(name: str, cluster: str, mesh: ir.MeshSettings) -> FilterChain:
    proxy = new(
        TcpProxy,
        stat_prefix=name,
        cluster=cluster,
        access_log=list(access_log.access_logs(mesh.access_log, "tcp")),
    )
    return new(
        FilterChain,
        name=name,
        filters=[new(Filter, name="envoy.filters.network.tcp_proxy", typed_config=pack(proxy))],
    )


def outbound_listener(t: ir.TransparentConfig, mesh: ir.MeshSettings) -> Listener:
    target = BLACKHOLE if t.registry_only else PASSTHROUGH
    return new(
        Listener,
        name=OUTBOUND,
        address=address("127.0.0.1", t.outbound_port),
        use_original_dst=True,
        traffic_direction=TrafficDirection.OUTBOUND,
        filter_chains=[_tcp_chain(target, target, mesh)],
        per_connection_buffer_limit_bytes=BUFFER_LIMIT_BYTES,
    )


def port_listener(p: ir.PortRoutes, mesh: ir.MeshSettings) -> Listener:
    manager = hcm.connection_manager(
        direction="outbound",
        stat_prefix=stat_name(p.name),
        route_config_name=p.name,
        http_filters=[*cors.http_filters(r for h in p.hosts for r in h.routes), fault.http_filter(), hcm.router()],
        access_log=access_log.access_logs(mesh.access_log, "http"),
    )
    return new(
        Listener,
        name=p.name,
        address=address("0.0.0.0", p.port),
        bind_to_port=False,
        traffic_direction=TrafficDirection.OUTBOUND,
        filter_chains=[new(FilterChain, filters=[hcm.network_filter(manager)])],
        per_connection_buffer_limit_bytes=BUFFER_LIMIT_BYTES,
    )


def _fallback(registry_only: bool) -> VirtualHost:
    if registry_only:
        action = new(
            Route,
            name="registry-only",
            match=new(RouteMatch, prefix="/"),
            direct_response=new(
                DirectResponseAction, status=502, body=new(DataSource, inline_string=REGISTRY_ONLY_BODY)
            ),
        )
    else:
        action = new(
            Route,
            name=PASSTHROUGH,
            match=new(RouteMatch, prefix="/"),
            route=new(RouteAction, cluster=PASSTHROUGH, timeout=timedelta(0)),
        )
    return new(VirtualHost, name=PASSTHROUGH, domains=["*"], routes=[action])


def port_route_config(p: ir.PortRoutes, registry_only: bool, cluster_hashes: ClusterHashes = ()) -> RouteConfiguration:
    hosts = [
        new(
            VirtualHost,
            name=stat_name(h.service),
            domains=list(h.domains),
            routes=[route.outbound_route(r, _extra_hash(r, cluster_hashes)) for r in h.routes],
        )
        for h in p.hosts
    ]
    return new(
        RouteConfiguration,
        name=p.name,
        virtual_hosts=[*hosts, _fallback(registry_only)],
        validate_clusters=False,
    )


def inbound_listener(t: ir.TransparentConfig, mesh: ir.MeshSettings) -> Listener:
    chains: list[FilterChain] = []
    for il in t.inbound:
        base, _ = _inbound.resources(il, mesh)
        for c in base.filter_chains:
            transport = c.filter_chain_match.transport_protocol if c.filter_chain_match else ""
            chains.append(
                new(
                    FilterChain,
                    name=f"{il.name}|{c.name}",
                    filter_chain_match=new(FilterChainMatch, destination_port=il.port, transport_protocol=transport),
                    filters=c.filters,
                    transport_socket=c.transport_socket,
                )
            )
    listener_filters = [new(ListenerFilter, name=ORIGINAL_DST_FILTER, typed_config=pack(new(OriginalDst)))]
    if any(il.tls.mode == "permissive" for il in t.inbound):
        listener_filters.append(new(ListenerFilter, name=_inbound.TLS_INSPECTOR, typed_config=pack(new(TlsInspector))))
    return new(
        Listener,
        name=INBOUND,
        address=address("0.0.0.0", t.inbound_port),
        traffic_direction=TrafficDirection.INBOUND,
        listener_filters=listener_filters,
        filter_chains=chains,
        per_connection_buffer_limit_bytes=BUFFER_LIMIT_BYTES,
    )


def clusters() -> tuple[tuple[Cluster, ClusterLoadAssignment | None], ...]:
    passthrough = new(
        Cluster,
        name=PASSTHROUGH,
        type=ClusterDiscoveryType.ORIGINAL_DST,
        lb_policy=ClusterLbPolicy.CLUSTER_PROVIDED,
        connect_timeout=ms(5_000),
        per_connection_buffer_limit_bytes=BUFFER_LIMIT_BYTES,
    )
    blackhole = new(
        Cluster,
        name=BLACKHOLE,
        type=ClusterDiscoveryType.STATIC,
        connect_timeout=ms(1_000),
        load_assignment=new(ClusterLoadAssignment, cluster_name=BLACKHOLE),
    )
    return ((passthrough, None), (blackhole, None))


@memoize(4_096)
def resources(
    t: ir.TransparentConfig, mesh: ir.MeshSettings, hashes: ClusterHashes = ()
) -> tuple[tuple[Listener, ...], tuple[RouteConfiguration, ...], tuple[Cluster, ...]]:
    """The capture listeners, the per-port listeners and their route configs, and the two fallback clusters.

    The per-destination (``ClusterIP:port``) listeners are ordinary outbound listeners (listener_outbound)."""
    listeners = [outbound_listener(t, mesh), *(port_listener(p, mesh) for p in t.by_port)]
    routes = [port_route_config(p, t.registry_only, hashes) for p in t.by_port]
    if t.inbound:
        listeners.append(inbound_listener(t, mesh))
        routes += [_inbound.route_config(il) for il in t.inbound if il.protocol == "http"]
    return tuple(listeners), tuple(routes), tuple(c for c, _ in clusters())
