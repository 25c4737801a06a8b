"""Global rate limits (``TrafficPolicy.spec.rules[].rateLimit.global``): one budget shared by every sidecar of the
target service, counted by a rate-limit service (the upstream ``envoyproxy/ratelimit`` with Redis).

Each descriptor names a limit and what it is counted per: nothing (the route as a whole), a request header's
value (each value separately), the calling workload's mesh identity, or the caller's address.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mesh_operator.api.common import DnsLabel, Duration, Model, cel


class DescriptorEntry(Model):
    """What a limit is counted per. Exactly one field is set."""

    model_config = cel(
        (
            "(has(self.header) ? 1 : 0) + (has(self.sourceIdentity) ? 1 : 0) + (has(self.remoteAddress) ? 1 : 0) == 1",
            "set exactly one of header, sourceIdentity, remoteAddress",
        )
    )

    header: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
        description="Each value of this request header has its own budget (requests without it are not counted).",
    )
    source_identity: Literal[True] | None = Field(default=None, description="Per calling workload (SPIFFE ID).")
    remote_address: Literal[True] | None = Field(default=None, description="Per caller address.")


class GlobalLimit(Model):
    requests: int = Field(ge=1, le=1_000_000_000)
    unit: Literal["second", "minute", "hour", "day"]


class GlobalDescriptor(Model):
    name: DnsLabel
    entries: list[DescriptorEntry] = Field(
        default_factory=list, max_length=4, description="Empty: one budget for the whole rule."
    )
    limit: GlobalLimit


class GlobalRateLimit(Model):
    descriptors: list[GlobalDescriptor] = Field(min_length=1, max_length=8)
    failure_mode: Literal["Allow", "Deny"] = Field(
        default="Allow", description="When the rate-limit service cannot answer: Allow (fail open) or Deny (500)."
    )
    timeout: Duration = Field(default="100ms", description="How long a sidecar waits for the service's answer.")
    mode: Literal["Enforce", "Shadow"] = Field(
        default="Enforce", description="Shadow: the service counts, nothing is refused."
    )
    response_status: int = Field(default=429, ge=400, le=599)


class RateLimitService(Model):
    """Where sidecars find the rate-limit service (gRPC, ``envoy.service.ratelimit.v3``)."""

    address: str = Field(min_length=1, max_length=253, description="A host name or IP address.")
    port: int = Field(ge=1, le=65535)
