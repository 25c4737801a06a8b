"""Inbound listeners: terminate mesh mTLS, enforce access policies and rate limits, forward to the app.

HTTP filter order: (with JWT providers: ``meshwork.jwt.strip_claim_headers``, ``jwt_authn``, see :mod:`.jwt`),
``meshwork.rbac.deny``, ``meshwork.rbac.allow``, ``local_ratelimit``, (global limits: ``ratelimit`` per enforced stage,
then for shadowed ones the naming block of :mod:`.ratelimit_global_shadow`, see :mod:`.ratelimit_global`),
``router``. Authentication comes before authorization so access rules can match the verified end user
(``requestPrincipals``, claims).
Authorization comes first so a request that will be refused never spends a token of the caller's (or anyone's)
rate-limit bucket, and DENY precedes ALLOW so an explicit deny can never be overridden by an allow. The router
is the terminal filter and therefore last.

mTLS modes: ``strict`` has a single TLS filter chain requiring a client certificate (plaintext fails the
handshake). ``permissive`` adds the ``tls_inspector`` listener filter and two chains: ``transport_protocol:
tls`` (mTLS, identical to strict) and ``raw_buffer`` (plaintext, no identity: principal rules never match it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from envoy_data_plane.envoy.config.core.v3 import TrafficDirection
from envoy_data_plane.envoy.config.listener.v3 import Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter
from envoy_data_plane.envoy.config.route.v3 import Route, RouteAction, RouteConfiguration, RouteMatch
from envoy_data_plane.envoy.extensions.filters.listener.tls_inspector.v3 import TlsInspector
from envoy_data_plane.envoy.extensions.filters.network.tcp_proxy.v3 import TcpProxy

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate import access_log, hcm, jwt, ratelimit, ratelimit_global, rbac, route, tls, tracing
from xds_server.translate._common import BUFFER_LIMIT_BYTES, pack, stat_token, transport_socket
from xds_server.translate._memo import memoize
from xds_server.translate.listener_outbound import address
from xds_server.translate.metadata import metadata

TLS_INSPECTOR: Final = "envoy.filters.listener.tls_inspector"
CATCH_ALL_ROUTE: Final = "inbound-default"


def route_config(lis: ir.InboundListener) -> RouteConfiguration:
    routes = [route.inbound_route(r, lis.local_cluster) for r in lis.routes]
    # Last: everything else goes to the app; no route timeout (the app decides, stream_idle_timeout still applies).
    routes.append(
        new(
            Route,
            name=CATCH_ALL_ROUTE,
            match=new(RouteMatch, prefix="/"),
            route=new(RouteAction, cluster=lis.local_cluster, timeout=timedelta(0)),
        )
    )
    # A header only a shadowed rate limit of this sidecar may set: never believed from the caller.
    shadowed = any(r.rate_limit is not None and r.rate_limit.shadow for r in lis.routes)
    strip = (ratelimit.SHADOW_HEADER,) if shadowed else ()
    return route.route_configuration(lis.name, routes, internal_only_headers=strip)


def _filters(lis: ir.InboundListener, mesh: ir.MeshSettings) -> list[Filter]:
    prefix = stat_token(lis.name)
    if lis.protocol == "tcp":
        proxy = new(
            TcpProxy,
            stat_prefix=prefix,
            cluster=lis.local_cluster,
            access_log=list(access_log.access_logs(mesh.access_log, "tcp")),
        )
        return [
            *rbac.network_filters(lis.rbac, prefix),
            new(Filter, name="envoy.filters.network.tcp_proxy", typed_config=pack(proxy)),
        ]
    http_filters = list(jwt.http_filters(lis.jwt)) if lis.jwt is not None else []
    http_filters += rbac.http_filters(lis.rbac)
    if any(r.rate_limit is not None for r in lis.routes):
        http_filters.append(ratelimit.http_filter())
    http_filters += ratelimit_global.http_filters(lis.routes)
    http_filters.append(hcm.router())
    manager = hcm.connection_manager(
        direction="inbound",
        stat_prefix=prefix,
        route_config_name=lis.name,
        http_filters=http_filters,
        access_log=access_log.access_logs(mesh.access_log, "http"),
        local_reply_config=jwt.local_reply_config() if lis.jwt is not None else None,
        tracing=tracing.hcm_tracing(mesh.tracing, _service_of(lis)) if mesh.tracing is not None else None,
    )
    return [hcm.network_filter(manager)]


def _service_of(lis: ir.InboundListener) -> str:
    """The inbound side's OpenTelemetry service name: the destination service (``name.namespace``)."""
    return lis.service or lis.name


def listener(lis: ir.InboundListener, mesh: ir.MeshSettings) -> Listener:
    filters = _filters(lis, mesh)
    alpn = ("h2", "http/1.1") if lis.protocol == "http" else ()
    mtls = transport_socket(tls.downstream(mesh, alpn))
    permissive = lis.tls.mode == "permissive"
    if permissive:
        chains = [
            new(
                FilterChain,
                name="mtls",
                filter_chain_match=new(FilterChainMatch, transport_protocol="tls"),
                filters=filters,
                transport_socket=mtls,
            ),
            new(
                FilterChain,
                name="plaintext",
                filter_chain_match=new(FilterChainMatch, transport_protocol="raw_buffer"),
                filters=filters,
            ),
        ]
        listener_filters = [new(ListenerFilter, name=TLS_INSPECTOR, typed_config=pack(new(TlsInspector)))]
    else:
        chains = [new(FilterChain, name="mtls", filters=filters, transport_socket=mtls)]
        listener_filters = []
    return new(
        Listener,
        name=lis.name,
        address=address(lis.address, lis.port),
        traffic_direction=TrafficDirection.INBOUND,
        listener_filters=listener_filters,
        filter_chains=chains,
        per_connection_buffer_limit_bytes=BUFFER_LIMIT_BYTES,
        metadata=metadata(
            [
                *(p.provenance for p in lis.rbac),
                *(r.provenance for r in lis.routes),
                *(p.provenance for p in (lis.jwt.providers if lis.jwt else ())),
            ],
            mtls_mode=lis.tls.mode,
        ),
    )


@memoize(16_384)
def resources(lis: ir.InboundListener, mesh: ir.MeshSettings) -> tuple[Listener, RouteConfiguration | None]:
    """The listener and (HTTP only) its route configuration, memoized together on the IR listener."""
    return listener(lis, mesh), route_config(lis) if lis.protocol == "http" else None
