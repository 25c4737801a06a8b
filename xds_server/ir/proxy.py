"""Listeners and the whole config of one proxy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from xds_server.ir.authn import JwtAuthn
from xds_server.ir.clusters import Cluster
from xds_server.ir.common import MeshSettings, NodeInfo, Provenance
from xds_server.ir.routes import Route
from xds_server.ir.security import InboundTls, RbacPolicy

if TYPE_CHECKING:
    from xds_server.ir.transparent import TransparentConfig


@dataclass(frozen=True, slots=True)
class InboundListener:
    """Traffic from the mesh to this workload: terminate mTLS, enforce access, rate-limit, forward to the app.

    ``routes`` carry only what the inbound side enforces per route (local rate limits); a final catch-all route to
    ``local_cluster`` is always added by the translation.
    """

    name: str
    address: str
    port: int
    protocol: Literal["http", "tcp"]
    local_cluster: str
    tls: InboundTls = InboundTls()
    rbac: tuple[RbacPolicy, ...] = ()
    routes: tuple[Route, ...] = ()
    #: End-user authentication (HTTP only).
    jwt: JwtAuthn | None = None
    #: The service's mesh host name (``name.namespace``), e.g. for span service names.
    service: str = ""


@dataclass(frozen=True, slots=True)
class OutboundListener:
    """Traffic from this workload to one service, on an explicit local port (``127.0.0.1:port``)."""

    name: str
    address: str
    port: int
    protocol: Literal["http", "tcp"]
    #: The service's mesh host name (``name.namespace``); also accepted as ``Host``.
    service: str
    routes: tuple[Route, ...] = ()
    #: For tcp listeners: the cluster to proxy to.
    tcp_cluster: str | None = None
    provenance: tuple[Provenance, ...] = ()
    #: False in transparent mode: the listener only receives connections handed over by the capture listener.
    bind: bool = True
    #: With tracing on: the OpenTelemetry service name of this proxy's outbound spans (the caller's).
    trace_service: str = ""


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    node: NodeInfo
    mesh: MeshSettings
    inbound: tuple[InboundListener, ...]
    #: A tuple, or (from the incremental translator) a :class:`~xds_server.layered.LayeredSeq` reading like one.
    outbound: Sequence[OutboundListener]
    clusters: Sequence[Cluster]
    #: Set for a sidecar whose pod's traffic is captured (``inbound``/``outbound`` are then empty).
    transparent: TransparentConfig | None = None
