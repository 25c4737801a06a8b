"""Rules a RetryPolicy must follow beyond its schema."""

from __future__ import annotations

from mesh_operator.api.common import duration_ms
from mesh_operator.api.retry_policy import RetryPolicy
from mesh_operator.validation.violations import Collector


def validate_retry_policy(policy: RetryPolicy, c: Collector) -> None:
    spec = policy.spec
    s = c.at("spec")
    ref = spec.target_ref
    if ref.kind == "TrafficPolicy" and not ref.section_name:
        s.at("targetRef").error("sectionName", "name the rule of the TrafficPolicy to retry")
    if ref.kind == "Service" and ref.section_name:
        s.at("targetRef").error("sectionName", "only valid with kind TrafficPolicy")
    if "retriable-status-codes" in spec.retry_on and not spec.retriable_status_codes:
        s.error("retriableStatusCodes", "list the codes to retry when retryOn has retriable-status-codes")
    if spec.retriable_status_codes and "retriable-status-codes" not in spec.retry_on:
        s.error("retryOn", "add retriable-status-codes, or the listed retriableStatusCodes are never retried")
    for i, code in enumerate(spec.retriable_status_codes):
        if not 100 <= code <= 599:
            s.at("retriableStatusCodes").error(i, f"{code} is not an HTTP status code")
    if spec.attempts > 0 and not spec.retry_on:
        s.error("retryOn", "name at least one condition to retry on")
    if spec.per_try_timeout is not None and duration_ms(spec.per_try_timeout) <= 0:
        s.error("perTryTimeout", "must be greater than 0")
    if spec.backoff is not None:
        base = duration_ms(spec.backoff.base_interval)  # > 0 is Envoy's own rule (validation/envoy.py)
        if spec.backoff.max_interval is not None and duration_ms(spec.backoff.max_interval) < base:
            s.at("backoff").error("maxInterval", "must not be less than baseInterval")
