"""TrafficPolicy: how callers reach one destination service.

Routing rules (matches, weighted splits over subsets, mirroring, faults, header edits, redirects, rewrites,
timeouts, per-route local rate limits) and the service's connection behaviour (load balancing, circuit breaking,
outlier detection, active health checks).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mesh_operator.api.common import (
    MODE_DESCRIPTION,
    VALUE_UNLESS_PRESENT,
    DnsLabel,
    Duration,
    Model,
    ObjectMeta,
    Percent,
    PolicyMode,
    PolicyStatus,
    ServiceRef,
    cel,
)
from mesh_operator.api.ratelimit_global import GlobalRateLimit
from mesh_operator.api.tracing import TracingOverride

StringMatchType = Literal["Exact", "Prefix", "RegularExpression"]


class PathMatch(Model):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: str = Field(min_length=1)


class HeaderMatch(Model):
    model_config = VALUE_UNLESS_PRESENT

    name: str = Field(min_length=1, max_length=256, pattern=r"^:?[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    type: Literal["Exact", "Prefix", "RegularExpression", "Present"] = "Exact"
    value: str | None = None
    invert: bool = False


class QueryParamMatch(Model):
    model_config = VALUE_UNLESS_PRESENT

    name: str = Field(min_length=1, max_length=256)
    type: Literal["Exact", "RegularExpression", "Present"] = "Exact"
    value: str | None = None


class Match(Model):
    """All conditions must hold (AND). A rule matches when any of its matches does (OR)."""

    path: PathMatch | None = None
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"] | None = None
    headers: list[HeaderMatch] = Field(default_factory=list, max_length=16)
    query_params: list[QueryParamMatch] = Field(default_factory=list, max_length=16)


class Subset(Model):
    """A named group of the service's instances, selected by labels (e.g. ``version: v2``)."""

    name: DnsLabel
    labels: dict[str, str] = Field(min_length=1)


class Backend(Model):
    subset: str | None = Field(default=None, description="A subset name; empty means every instance.")
    weight: int = Field(default=100, ge=0, le=100)


class Mirror(Model):
    subset: str | None = None
    percent: Percent = 100


class FaultDelay(Model):
    fixed_delay: Duration
    percent: Percent = 100


class FaultAbort(Model):
    http_status: int = Field(ge=200, le=599)
    percent: Percent = 100


class Fault(Model):
    model_config = cel(("has(self.delay) || has(self.abort)", "set delay, abort or both"))

    delay: FaultDelay | None = None
    abort: FaultAbort | None = None


class Header(Model):
    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    value: str = Field(max_length=4096)


class HeaderModifier(Model):
    set: list[Header] = Field(default_factory=list)
    add: list[Header] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)


class Redirect(Model):
    scheme: Literal["http", "https"] | None = None
    hostname: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    path: str | None = Field(default=None, description="Replace the whole path.")
    prefix: str | None = Field(default=None, description="Replace the matched path prefix.")
    status_code: Literal[301, 302, 303, 307, 308] = 302


class PathRewrite(Model):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    value: str = Field(min_length=1)


class Rewrite(Model):
    path: PathRewrite | None = None
    hostname: str | None = None


class Timeouts(Model):
    request: Duration | None = Field(default=None, description="Whole request, all retries included.")
    idle: Duration | None = Field(default=None, description="Stream idle timeout.")


class RateLimit(Model):
    """A local token bucket enforced by each destination instance (``maxTokens`` ...), a global limit shared by
    all of them (``global``), or both (a request must pass each)."""

    model_config = cel(
        ("duration(self.fillInterval) >= duration('50ms')", "fillInterval must be at least 50ms (Envoy's minimum)"),
        ("has(self.maxTokens) || has(self.global)", "set maxTokens (a local limit), global, or both"),
    )

    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    tokens_per_fill: int = Field(default=1, ge=1, le=1_000_000)
    fill_interval: Duration = "1s"
    response_status: int = Field(default=429, ge=400, le=599)
    mode: Literal["Enforce", "Shadow"] = Field(
        default="Enforce", description="Shadow: count the requests over the limit but serve them."
    )
    global_: GlobalRateLimit | None = Field(default=None, alias="global")


class Rule(Model):
    model_config = cel(
        (
            "!has(self.backends) || size(self.backends) == 0 || self.backends.map(b, b.weight).sum() == 100",
            "backends: weights must sum to 100",
        ),
        ("!has(self.redirect) || !has(self.backends) || size(self.backends) == 0", "redirect excludes backends"),
    )

    name: DnsLabel | None = Field(default=None, description="Names the rule for RetryPolicy sectionName and stats.")
    matches: list[Match] = Field(default_factory=list, max_length=32)
    backends: list[Backend] = Field(default_factory=list, max_length=16)
    mirror: Mirror | None = None
    fault: Fault | None = None
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    timeouts: Timeouts | None = None
    rate_limit: RateLimit | None = None


class HashOn(Model):
    """One hash key. Exactly one field is set."""

    model_config = cel(
        (
            "(has(self.header) ? 1 : 0) + (has(self.cookie) ? 1 : 0) + (has(self.sourceIp) ? 1 : 0) == 1",
            "set exactly one of header, cookie, sourceIp",
        )
    )

    header: str | None = None
    cookie: str | None = None
    cookie_ttl: Duration | None = None
    source_ip: bool | None = None


class LoadBalancer(Model):
    model_config = cel(
        (
            "!has(self.hashOn) || size(self.hashOn) == 0 || self.type in ['RingHash', 'Maglev']",
            "hashOn needs type RingHash or Maglev",
        )
    )

    type: Literal["RoundRobin", "LeastRequest", "RingHash", "Maglev", "Random"] = "RoundRobin"
    hash_on: list[HashOn] = Field(default_factory=list, max_length=4)
    locality_aware: bool = Field(default=False, description="Prefer instances in the caller's zone/region.")


class CircuitBreaker(Model):
    max_connections: int | None = Field(default=None, ge=1)
    max_pending_requests: int | None = Field(default=None, ge=1)
    max_requests: int | None = Field(default=None, ge=1)
    max_retries: int | None = Field(default=None, ge=0)


class OutlierDetection(Model):
    consecutive_5xx: int = Field(default=5, ge=1, alias="consecutive5xx")
    consecutive_gateway_errors: int | None = Field(default=None, ge=1)
    interval: Duration = "10s"
    base_ejection_time: Duration = "30s"
    max_ejection_percent: int = Field(default=10, ge=0, le=100)


class StatusRange(Model):
    model_config = cel(("self.start <= self.end", "start must not be after end"))

    start: int = Field(ge=100, le=599)
    end: int = Field(ge=100, le=599, description="Inclusive.")


class HttpHealthCheck(Model):
    path: str = Field(default="/", pattern=r"^/")
    expected_statuses: list[StatusRange] = Field(default_factory=lambda: [StatusRange(start=200, end=299)])


class GrpcHealthCheck(Model):
    service_name: str = ""


class HealthCheck(Model):
    """Active health checking. Exactly one of http, tcp, grpc."""

    model_config = cel(
        (
            "(has(self.http) ? 1 : 0) + (has(self.tcp) ? 1 : 0) + (has(self.grpc) ? 1 : 0) == 1",
            "set exactly one of http, tcp, grpc",
        )
    )

    http: HttpHealthCheck | None = None
    tcp: dict[str, str] | None = Field(default=None, description="Set to {} for a TCP connect check.")
    grpc: GrpcHealthCheck | None = None
    interval: Duration = "10s"
    timeout: Duration = "1s"
    healthy_threshold: int = Field(default=1, ge=1, le=100)
    unhealthy_threshold: int = Field(default=3, ge=1, le=100)


class ServiceTimeouts(Model):
    connect: Duration | None = None
    request: Duration | None = None
    idle: Duration | None = None


class TrafficPolicySpec(Model):
    model_config = cel(
        (
            "!has(self.subsets) || self.subsets.all(s, self.subsets.exists_one(t, t.name == s.name))",
            "subsets: names must be unique",
        ),
        (
            "!has(self.rules) || self.rules.all(r, !has(r.name) || "
            "self.rules.exists_one(q, has(q.name) && q.name == r.name))",
            "rules: names must be unique",
        ),
        (
            "!has(self.rules) || self.rules.all(r, !has(r.backends) || r.backends.all(b, !has(b.subset) || "
            "(has(self.subsets) && self.subsets.exists(s, s.name == b.subset))))",
            "rules: every backend subset must be declared in spec.subsets",
        ),
        (
            "!has(self.mode) || self.mode != 'Shadow'",
            "mode: routing cannot be shadowed; use Enforce or Off, or rules[].rateLimit.mode: Shadow",
        ),
    )

    target_ref: ServiceRef
    mode: PolicyMode = Field(
        default="Enforce",
        description=MODE_DESCRIPTION + " Routing cannot be shadowed: shadow a rate limit with rules[].rateLimit.mode.",
    )
    subsets: list[Subset] = Field(default_factory=list, max_length=32)
    rules: list[Rule] = Field(default_factory=list, max_length=128)
    timeouts: ServiceTimeouts | None = None
    load_balancer: LoadBalancer | None = None
    circuit_breaker: CircuitBreaker | None = None
    outlier_detection: OutlierDetection | None = None
    health_check: HealthCheck | None = None
    tracing: TracingOverride | None = Field(default=None, description="Sampling of requests to this service.")


class TrafficPolicy(Model):
    api_version: Literal["meshwork.io/v1alpha1"] = "meshwork.io/v1alpha1"
    kind: Literal["TrafficPolicy"] = "TrafficPolicy"
    metadata: ObjectMeta
    spec: TrafficPolicySpec
    status: PolicyStatus | None = None
