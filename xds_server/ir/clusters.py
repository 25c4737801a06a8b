"""Upstream clusters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xds_server.ir.common import Provenance
from xds_server.ir.routes import HashPolicy
from xds_server.ir.security import UpstreamTls


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int
    region: str = ""
    zone: str = ""
    weight: int = 1
    #: Which instance this is (namespace/workload), for metadata and debugging.
    instance: str = ""


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    kind: Literal["round_robin", "least_request", "ring_hash", "maglev", "random"] = "round_robin"
    hash_on: tuple[HashPolicy, ...] = ()
    #: Prefer endpoints in the proxy's own zone/region (zone-aware routing via locality priorities).
    locality_aware: bool = False


@dataclass(frozen=True, slots=True)
class RetryBudget:
    percent: float
    min_retry_concurrency: int


@dataclass(frozen=True, slots=True)
class CircuitBreakers:
    max_connections: int | None = None
    max_pending_requests: int | None = None
    max_requests: int | None = None
    max_retries: int | None = None
    retry_budget: RetryBudget | None = None


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    consecutive_5xx: int = 5
    consecutive_gateway_errors: int | None = None
    interval_ms: int = 10_000
    base_ejection_ms: int = 30_000
    max_ejection_percent: int = 10


@dataclass(frozen=True, slots=True)
class HealthCheck:
    kind: Literal["http", "tcp", "grpc"]
    interval_ms: int
    timeout_ms: int
    healthy_threshold: int = 1
    unhealthy_threshold: int = 3
    path: str = "/"
    #: Half-open ranges [start, end) of statuses that count as healthy.
    expected_statuses: tuple[tuple[int, int], ...] = ((200, 300),)
    grpc_service: str = ""


@dataclass(frozen=True, slots=True)
class Cluster:
    """An upstream cluster. ``name`` is also the EDS service name."""

    name: str
    #: The service's mesh host name (``name.namespace``), for stats and SNI.
    service: str
    endpoints: tuple[Endpoint, ...] = ()
    protocol: Literal["http", "http2", "tcp"] = "http"
    connect_timeout_ms: int = 5_000
    lb: LoadBalancer = LoadBalancer()
    circuit_breakers: CircuitBreakers = CircuitBreakers()
    outlier: OutlierDetection | None = None
    health_check: HealthCheck | None = None
    tls: UpstreamTls | None = None
    provenance: tuple[Provenance, ...] = ()
