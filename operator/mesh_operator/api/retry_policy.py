"""RetryPolicy: how callers retry requests to a service, or to one named rule of a TrafficPolicy."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mesh_operator.api.common import (
    MODE_DESCRIPTION,
    Duration,
    Model,
    ObjectMeta,
    Percent,
    PolicyMode,
    PolicyStatus,
    TargetRef,
    cel,
)

RetryOn = Literal[
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "http3-post-connect-failure",
    "envoy-ratelimited",
]


def _default_retry_on() -> list[RetryOn]:
    return ["connect-failure", "refused-stream", "reset"]


class Backoff(Model):
    model_config = cel(
        (
            "!has(self.maxInterval) || duration(self.maxInterval) >= duration(self.baseInterval)",
            "maxInterval must not be less than baseInterval",
        )
    )

    base_interval: Duration = "25ms"
    max_interval: Duration | None = Field(default=None, description="Defaults to 10 × baseInterval.")


class RetryBudget(Model):
    """Caps active retries to a share of active requests, so retries cannot turn an outage into a storm."""

    percent: Percent = 20
    min_retry_concurrency: int = Field(default=3, ge=0, le=10_000)


class RetryPolicySpec(Model):
    model_config = cel(
        (
            "self.targetRef.kind != 'TrafficPolicy' || has(self.targetRef.sectionName)",
            "targetRef.sectionName is required with kind TrafficPolicy",
        ),
        (
            "!has(self.retryOn) || !('retriable-status-codes' in self.retryOn) || "
            "(has(self.retriableStatusCodes) && size(self.retriableStatusCodes) > 0)",
            "retriableStatusCodes: list the codes to retry when retryOn has retriable-status-codes",
        ),
        ("!has(self.mode) || self.mode != 'Shadow'", "mode: a retry cannot be shadowed; use Enforce or Off"),
    )

    target_ref: TargetRef
    mode: PolicyMode = Field(default="Enforce", description=MODE_DESCRIPTION + " RetryPolicy has no Shadow.")
    attempts: int = Field(default=2, ge=0, le=10, description="Retries after the first try.")
    retry_on: list[RetryOn] = Field(default_factory=_default_retry_on)
    retriable_status_codes: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=list, max_length=16)
    per_try_timeout: Duration | None = None
    backoff: Backoff | None = None
    budget: RetryBudget | None = None


class RetryPolicy(Model):
    api_version: Literal["meshwork.io/v1alpha1"] = "meshwork.io/v1alpha1"
    kind: Literal["RetryPolicy"] = "RetryPolicy"
    metadata: ObjectMeta
    spec: RetryPolicySpec
    status: PolicyStatus | None = None
