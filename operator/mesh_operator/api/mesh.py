"""Mesh: mesh-wide settings (cluster-scoped; one per mesh, conventionally named ``default``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mesh_operator.api.common import DnsLabel, Duration, Model, ObjectMeta, PolicyStatus, cel
from mesh_operator.api.ratelimit_global import RateLimitService
from mesh_operator.api.retry_policy import RetryBudget
from mesh_operator.api.tracing import Tracing


class Mtls(Model):
    mode: Literal["Strict", "Permissive"] = Field(
        default="Strict", description="Strict requires mesh certificates; Permissive also accepts plaintext."
    )


class Certificates(Model):
    model_config = cel(
        ("duration(self.workloadTtl) < duration(self.rootTtl)", "workloadTtl must be shorter than rootTtl"),
        ("duration(self.workloadTtl) >= duration('10s')", "workloadTtl must be at least 10s"),
    )

    workload_ttl: Duration = "24h"
    root_ttl: Duration = "87600h"


class AccessLog(Model):
    enabled: bool = True
    format: Literal["Text", "JSON"] = "Text"
    path: str = "/dev/stdout"


class Metrics(Model):
    enabled: bool = True


#: ``namespace/name`` of a Service, or ``namespace/*`` for every Service of a namespace.
EGRESS_SERVICE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$"
EgressService = Annotated[str, Field(pattern=EGRESS_SERVICE_PATTERN, max_length=127)]


class SidecarEgress(Model):
    """The Services the transparent-mode sidecars of one namespace (or of one service account in it) receive.

    Sidecars it selects get only these Services (and of them, only those whose AccessPolicies let the sidecar's
    identity in). A ``serviceAccount`` entry takes precedence over its namespace's entry. A listed Service that
    does not exist is reported (``meshctl check`` MW0006), never silently dropped from the list: it is sent as soon
    as it appears."""

    namespace: DnsLabel = Field(description="The namespace of the sidecars this applies to.")
    service_account: DnsLabel | None = Field(
        default=None, description="Only the sidecars of this service account (default: the whole namespace)."
    )
    services: list[EgressService] = Field(
        min_length=1,
        max_length=1024,
        description="namespace/name of a Service, or namespace/* for every Service of that namespace.",
    )


class MeshSpec(Model):
    trust_domain: str = Field(default="cluster.local", pattern=r"^[a-z0-9._-]+$", max_length=255)
    mtls: Mtls = Field(default_factory=Mtls)
    certificates: Certificates = Field(default_factory=Certificates)
    access_log: AccessLog = Field(default_factory=AccessLog)
    metrics: Metrics = Field(default_factory=Metrics)
    default_retry_budget: RetryBudget = Field(default_factory=RetryBudget)
    outbound_traffic_policy: Literal["AllowAny", "RegistryOnly"] = Field(
        default="AllowAny",
        description="Captured connections to destinations outside the mesh: AllowAny passes them through to the "
        "address the app dialed; RegistryOnly refuses them.",
    )
    tracing: Tracing | None = Field(default=None, description="OpenTelemetry tracing; off when unset.")
    rate_limit_service: RateLimitService | None = Field(
        default=None, description="The rate-limit service global rate limits need (gRPC)."
    )
    sidecar_egress: list[SidecarEgress] = Field(
        default_factory=list,
        max_length=1024,
        description="Transparent mode: the Services selected sidecars receive (unlisted sidecars get every "
        "Service their identity may call).",
    )


class Mesh(Model):
    api_version: Literal["meshwork.io/v1alpha1"] = "meshwork.io/v1alpha1"
    kind: Literal["Mesh"] = "Mesh"
    metadata: ObjectMeta
    spec: MeshSpec = Field(default_factory=MeshSpec)
    status: PolicyStatus | None = None
