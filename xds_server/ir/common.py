"""Provenance, node identity and mesh-wide settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Provenance:
    """Which policy produced a piece of config. Rendered into Envoy metadata and stat prefixes."""

    kind: str
    namespace: str
    name: str
    generation: int

    @property
    def policy(self) -> str:
        """``Kind/namespace/name``: the policy, whatever its generation (how status and receipts name it)."""
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def ref(self) -> str:
        """``Kind/namespace/name@generation`` – what a user greps for."""
        return f"{self.kind}/{self.namespace}/{self.name}@{self.generation}"

    @property
    def stat_name(self) -> str:
        """A stat-safe token (Envoy stat names are dot-separated): ``trafficpolicy_ns_name``."""
        return f"{self.kind.lower()}_{self.namespace}_{self.name}".replace(".", "_").replace("-", "_")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The proxy the config is for."""

    id: str  # "namespace/workload"
    namespace: str
    workload: str
    service_account: str
    spiffe_id: str
    cluster: str = "meshwork"
    region: str = ""
    zone: str = ""


@dataclass(frozen=True, slots=True)
class AccessLogSettings:
    enabled: bool = True
    format: Literal["text", "json"] = "text"
    path: str = "/dev/stdout"


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """OpenTelemetry over OTLP/gRPC to ``collector`` (host, port); ``tags``: ``(name, "literal"|"header", value)``."""

    collector: tuple[str, int]
    sampling_percent: float = 1.0
    tags: tuple[tuple[str, Literal["literal", "header"], str], ...] = ()


@dataclass(frozen=True, slots=True)
class MeshSettings:
    trust_domain: str = "cluster.local"
    mtls_mode: Literal["strict", "permissive"] = "strict"
    access_log: AccessLogSettings = AccessLogSettings()
    metrics_enabled: bool = True
    #: ``(host, port)`` of the rate-limit service (gRPC), when global rate limits are in use.
    ratelimit_service: tuple[str, int] | None = None
    tracing: TracingSettings | None = None
    #: Names of the SDS secrets every sidecar uses.
    cert_secret: str = "default"
    bundle_secret: str = "ROOTCA"
