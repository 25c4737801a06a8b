"""Which Envoy field each API field ends up in: the map that lets validation apply Envoy's own rules.

Envoy's protos carry protoc-gen-validate rules (ranges, ``gt: 0s`` durations, string patterns, enum membership);
Envoy NACKs any resource that breaks them. ``envoy_rules.json`` holds those rules for the fields named here,
extracted from the protos themselves by ``scripts/envoy/extract_rules.py`` (never copied by hand; a test fails
when the file drifts from the protos). :mod:`mesh_operator.validation.envoy` checks every API value against the
rules of the Envoy field it becomes, and reports *our* field path.

Paths use the API's camelCase names; ``[]`` walks every item of a list. Each value is ``(message, field,
conversion)``: ``"duration"`` values are compared in milliseconds, ``"int"`` and ``"str"`` as they are.
"""

from __future__ import annotations

from typing import Final, Literal

Conversion = Literal["duration", "int", "str"]

_TB = "envoy.type.v3.TokenBucket"
_OD = "envoy.config.cluster.v3.OutlierDetection"
_CB = "envoy.config.cluster.v3.CircuitBreakers.Thresholds"
_HC = "envoy.config.core.v3.HealthCheck"
_HV = "envoy.config.core.v3.HeaderValue"
_RA = "envoy.config.route.v3.RouteAction"
_RD = "envoy.config.route.v3.RedirectAction"
_RP = "envoy.config.route.v3.RetryPolicy"
_FAULT = "envoy.extensions.filters.common.fault.v3.FaultDelay"
_ABORT = "envoy.extensions.filters.http.fault.v3.FaultAbort"


def _headers(base: str) -> dict[str, tuple[str, str, Conversion]]:
    out: dict[str, tuple[str, str, Conversion]] = {}
    for edit in ("requestHeaders", "responseHeaders"):
        for op in ("set", "add"):
            out[f"{base}.{edit}.{op}[].name"] = (_HV, "key", "str")
            out[f"{base}.{edit}.{op}[].value"] = (_HV, "value", "str")
        field = "request_headers_to_remove" if edit == "requestHeaders" else "response_headers_to_remove"
        out[f"{base}.{edit}.remove[]"] = ("envoy.config.route.v3.Route", field, "str")
    return out


ENVOY_FIELDS: Final[dict[str, dict[str, tuple[str, str, Conversion]]]] = {
    "TrafficPolicy": {
        "spec.timeouts.connect": ("envoy.config.cluster.v3.Cluster", "connect_timeout", "duration"),
        "spec.timeouts.request": (_RA, "timeout", "duration"),
        "spec.timeouts.idle": (_RA, "idle_timeout", "duration"),
        "spec.outlierDetection.interval": (_OD, "interval", "duration"),
        "spec.outlierDetection.baseEjectionTime": (_OD, "base_ejection_time", "duration"),
        "spec.outlierDetection.consecutive5xx": (_OD, "consecutive_5xx", "int"),
        "spec.outlierDetection.consecutiveGatewayErrors": (_OD, "consecutive_gateway_failure", "int"),
        "spec.outlierDetection.maxEjectionPercent": (_OD, "max_ejection_percent", "int"),
        "spec.circuitBreaker.maxConnections": (_CB, "max_connections", "int"),
        "spec.circuitBreaker.maxPendingRequests": (_CB, "max_pending_requests", "int"),
        "spec.circuitBreaker.maxRequests": (_CB, "max_requests", "int"),
        "spec.circuitBreaker.maxRetries": (_CB, "max_retries", "int"),
        "spec.healthCheck.interval": (_HC, "interval", "duration"),
        "spec.healthCheck.timeout": (_HC, "timeout", "duration"),
        "spec.healthCheck.healthyThreshold": (_HC, "healthy_threshold", "int"),
        "spec.healthCheck.unhealthyThreshold": (_HC, "unhealthy_threshold", "int"),
        "spec.healthCheck.http.path": (f"{_HC}.HttpHealthCheck", "path", "str"),
        "spec.loadBalancer.hashOn[].header": (f"{_RA}.HashPolicy.Header", "header_name", "str"),
        "spec.loadBalancer.hashOn[].cookie": (f"{_RA}.HashPolicy.Cookie", "name", "str"),
        "spec.loadBalancer.hashOn[].cookieTtl": (f"{_RA}.HashPolicy.Cookie", "ttl", "duration"),
        "spec.rules[].matches[].headers[].name": ("envoy.config.route.v3.HeaderMatcher", "name", "str"),
        "spec.rules[].matches[].queryParams[].name": ("envoy.config.route.v3.QueryParameterMatcher", "name", "str"),
        "spec.rules[].timeouts.request": (_RA, "timeout", "duration"),
        "spec.rules[].timeouts.idle": (_RA, "idle_timeout", "duration"),
        "spec.rules[].fault.delay.fixedDelay": (
            "envoy.extensions.filters.common.fault.v3.FaultDelay",
            "fixed_delay",
            "duration",
        ),
        "spec.rules[].fault.abort.httpStatus": (
            "envoy.extensions.filters.http.fault.v3.FaultAbort",
            "http_status",
            "int",
        ),
        "spec.rules[].rateLimit.maxTokens": (_TB, "max_tokens", "int"),
        "spec.rules[].rateLimit.tokensPerFill": (_TB, "tokens_per_fill", "int"),
        "spec.rules[].rateLimit.fillInterval": (_TB, "fill_interval", "duration"),
        "spec.rules[].rateLimit.responseStatus": ("envoy.type.v3.HttpStatus", "code", "int"),
        "spec.rules[].redirect.hostname": (_RD, "host_redirect", "str"),
        "spec.rules[].redirect.path": (_RD, "path_redirect", "str"),
        "spec.rules[].redirect.prefix": (_RD, "prefix_rewrite", "str"),
        "spec.rules[].rewrite.hostname": (_RA, "host_rewrite_literal", "str"),
        "spec.rules[].rewrite.path.value": (_RA, "prefix_rewrite", "str"),
        **_headers("spec.rules[]"),
    },
    "RetryPolicy": {
        "spec.attempts": (_RP, "num_retries", "int"),
        "spec.perTryTimeout": (_RP, "per_try_timeout", "duration"),
        "spec.backoff.baseInterval": (f"{_RP}.RetryBackOff", "base_interval", "duration"),
        "spec.backoff.maxInterval": (f"{_RP}.RetryBackOff", "max_interval", "duration"),
    },
    "AccessPolicy": {
        "spec.rules[].to[].headers[].name": ("envoy.config.route.v3.HeaderMatcher", "name", "str"),
    },
    "Mesh": {
        "spec.accessLog.path": ("envoy.extensions.access_loggers.file.v3.FileAccessLog", "path", "str"),
    },
}
