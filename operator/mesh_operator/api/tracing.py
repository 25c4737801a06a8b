"""Tracing with OpenTelemetry: the Mesh-level setting (``Mesh.spec.tracing``) and the per-policy sampling override
(``TrafficPolicy.spec.tracing``).

Every sidecar's HTTP connection managers run Envoy's OpenTelemetry tracer, exporting spans over OTLP/gRPC to the
collector, and propagate W3C ``traceparent``. Apps must copy ``traceparent`` (and ``tracestate``) from the request
they serve to the requests they make, as with any tracing system, for the hops to join into one trace.
"""

from __future__ import annotations

from pydantic import Field

from mesh_operator.api.common import Model, Percent, cel


class Collector(Model):
    address: str = Field(min_length=1, max_length=253, description="Host name or IP address of the OTLP/gRPC receiver.")
    port: int = Field(default=4317, ge=1, le=65535)


class CustomTag(Model):
    """A span attribute: a literal value, or a request header's value. Exactly one of literal, header."""

    model_config = cel(("has(self.literal) != has(self.header)", "set exactly one of literal, header"))

    name: str = Field(min_length=1, max_length=256)
    literal: str | None = Field(default=None, max_length=4096)
    header: str | None = Field(default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


class Tracing(Model):
    collector: Collector
    sampling_percent: Percent = Field(default=1, description="Share of requests that start a trace.")
    custom_tags: list[CustomTag] = Field(default_factory=list, max_length=16)


class TracingOverride(Model):
    """Per service: the share of requests to it that start a trace (instead of the Mesh's)."""

    sampling_percent: Percent
