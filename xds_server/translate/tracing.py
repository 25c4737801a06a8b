"""Tracing with Envoy's OpenTelemetry tracer (``envoy.tracers.opentelemetry``), exporting OTLP over gRPC.

Every HTTP connection manager (inbound and outbound) traces: Envoy propagates W3C ``traceparent`` and makes one
span per hop — the caller's outbound span is the parent of the destination's inbound span, and an app that copies
``traceparent`` into its own calls makes its outbound spans children of its inbound span, so a whole call chain is
one trace. Sampling is OpenTelemetry's ``ParentBased(TraceIdRatioBased(percent))`` sampler in every HCM (Envoy's
own ``random_sampling`` is 100 % so it never vetoes the sampler): a request that carries a ``traceparent`` follows
its sampled flag, so every hop agrees with the first, and an incoming sampled ``traceparent`` is continued; a new
trace is sampled by its trace id at the mesh's percentage, or, on a caller's outbound listener to a service whose
TrafficPolicy sets ``tracing.samplingPercent``, at that percentage (the caller's outbound side starts traces).

Spans carry Envoy's standard attributes (``node_id``, ``upstream_cluster``, ``http.url`` ...), the mesh's
custom tags, and two of Meshwork's: ``meshwork.route`` (the route's name) and ``meshwork.policies`` (the policies
that made the route, ``Kind/namespace/name@generation``, from the route's provenance metadata; absent on routes no
policy made); ``service.name`` is the destination service on the inbound side and the calling service (or client
workload) on the outbound side.
Spans go to the collector through the generated cluster ``meshwork_otel`` (HTTP/2).
"""

from __future__ import annotations

from typing import Final

from envoy_data_plane.envoy.config.cluster.v3 import Cluster
from envoy_data_plane.envoy.config.core.v3 import (
    GrpcService,
    GrpcServiceEnvoyGrpc,
    TypedExtensionConfig,
)
from envoy_data_plane.envoy.config.trace.v3 import OpenTelemetryConfig, TracingHttp
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
    HttpConnectionManagerTracing,
)
from envoy_data_plane.envoy.extensions.tracers.opentelemetry.samplers.v3 import (
    ParentBasedSamplerConfig,
    TraceIdRatioBasedSamplerConfig,
)
from envoy_data_plane.envoy.type.metadata.v3 import MetadataKey, MetadataKeyPathSegment, MetadataKind, MetadataKindRoute
from envoy_data_plane.envoy.type.tracing.v3 import CustomTag, CustomTagHeader, CustomTagLiteral, CustomTagMetadata
from envoy_data_plane.envoy.type.v3 import Percent

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate._common import fraction, pack, typed
from xds_server.translate._memo import memoize
from xds_server.translate.grpc_service import grpc_service_cluster
from xds_server.translate.metadata import NAMESPACE, POLICIES_KEY

TRACER: Final = "envoy.tracers.opentelemetry"
CLUSTER: Final = "meshwork_otel"
PARENT_SAMPLER: Final = "envoy.tracers.opentelemetry.samplers.parent_based"
RATIO_SAMPLER: Final = "envoy.tracers.opentelemetry.samplers.trace_id_ratio_based"
ROUTE_TAG: Final = "meshwork.route"
POLICIES_TAG: Final = "meshwork.policies"


def _meshwork_tags() -> list[CustomTag]:
    """The route's name and the policies that made it (the route's ``meshwork.io`` provenance metadata)."""
    policies = new(
        CustomTagMetadata,
        kind=new(MetadataKind, route=new(MetadataKindRoute)),
        metadata_key=new(MetadataKey, key=NAMESPACE, path=[new(MetadataKeyPathSegment, key=POLICIES_KEY)]),
    )
    return [new(CustomTag, tag=ROUTE_TAG, value="%ROUTE_NAME%"), new(CustomTag, tag=POLICIES_TAG, metadata=policies)]


def sampler(percent: float) -> TypedExtensionConfig:
    """OpenTelemetry's ParentBased(TraceIdRatioBased(percent)): a request carrying a ``traceparent`` follows its
    sampled flag (so every hop agrees with the first); a new trace is sampled by its trace id."""
    ratio = new(TraceIdRatioBasedSamplerConfig, sampling_percentage=fraction(percent))
    parent = new(ParentBasedSamplerConfig, wrapped_sampler=typed(RATIO_SAMPLER, ratio))
    return typed(PARENT_SAMPLER, parent)


@memoize(16_384)
def hcm_tracing(t: ir.TracingSettings, service_name: str, percent: float | None = None) -> HttpConnectionManagerTracing:
    """``percent``: the share of new traces started here (default: the mesh's)."""
    otel = new(
        OpenTelemetryConfig,
        grpc_service=new(GrpcService, envoy_grpc=new(GrpcServiceEnvoyGrpc, cluster_name=CLUSTER)),
        service_name=service_name,
        sampler=sampler(t.sampling_percent if percent is None else percent),
    )
    tags = [
        new(CustomTag, tag=name, literal=new(CustomTagLiteral, value=value))
        if kind == "literal"
        else new(CustomTag, tag=name, request_header=new(CustomTagHeader, name=value))
        for name, kind, value in t.tags
    ] + _meshwork_tags()
    return new(
        HttpConnectionManagerTracing,
        # The sampler decides; Envoy's own random decision must not veto it.
        random_sampling=new(Percent, value=100.0),
        custom_tags=tags,
        provider=new(TracingHttp, name=TRACER, typed_config=pack(otel)),
    )


def outbound_percent(lis: ir.OutboundListener) -> float | None:
    """A TrafficPolicy's sampling of its service, carried on the caller's routes to it (see stage 1)."""
    return next((r.trace_sampling for r in lis.routes if r.trace_sampling is not None), None)


def clusters(cfg: ir.ProxyConfig) -> tuple[Cluster, ...]:
    """The collector's cluster, when tracing is on and this proxy has an HTTP listener."""
    t = cfg.mesh.tracing
    if t is None:  # (first: a large proxy's listeners are not walked for nothing)
        return ()
    http = any(lis.protocol == "http" for lis in cfg.inbound) or any(lis.protocol == "http" for lis in cfg.outbound)
    if not http:
        return ()
    return (grpc_service_cluster(CLUSTER, t.collector),)
