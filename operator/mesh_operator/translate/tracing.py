"""Tracing: the Mesh's OpenTelemetry settings -> IR, and the per-TrafficPolicy sampling on the callers' routes.

A trace starts (or is not started) at the first sidecar that sees the request: the caller's outbound side. So the
sampling of a service is set on the routes of every outbound listener towards it; the destination's inbound side
and later hops follow the decision carried in the request (``traceparent``'s sampled flag / ``x-request-id``).
"""

from __future__ import annotations

from dataclasses import replace

from mesh_operator.api.mesh import Mesh
from mesh_operator.api.traffic_policy import TrafficPolicy
from mesh_operator.translate.state import MeshState, WorkloadInfo
from xds_server import ir


def tracing_settings(mesh: Mesh) -> ir.TracingSettings | None:
    t = mesh.spec.tracing
    if t is None:
        return None
    return ir.TracingSettings(
        collector=(t.collector.address, t.collector.port),
        sampling_percent=t.sampling_percent,
        tags=tuple(
            (tag.name, "literal", tag.literal) if tag.literal is not None else (tag.name, "header", tag.header or "")
            for tag in t.custom_tags
        ),
    )


def trace_service_name(w: WorkloadInfo, state: MeshState) -> str:
    """The OpenTelemetry ``service.name`` of a proxy's outbound spans: the service it is an instance of (its first
    inbound service), else the workload (``name.namespace``)."""
    for ib in w.inbound:
        svc = state.services.get(ib.service)
        if svc is not None:
            return svc.host
    return f"{w.name}.{w.namespace}"


def trace_sampling(tp: TrafficPolicy | None) -> float | None:
    return tp.spec.tracing.sampling_percent if tp is not None and tp.spec.tracing is not None else None


def traced_outbound(lis: ir.OutboundListener, service: str, sampling: float | None) -> ir.OutboundListener:
    routes = lis.routes if sampling is None else tuple(replace(r, trace_sampling=sampling) for r in lis.routes)
    return replace(lis, routes=routes, trace_service=service)
