"""Types every kind shares: metadata, targetRef, durations, conditions and status."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

API_GROUP = "meshwork.io"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|m|s))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
#: The pattern checked in the CRD schema too.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(h|ms|m|s))+$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def duration_ms(value: str) -> int:
    """Milliseconds of a Go-style duration such as ``1.5s``, ``250ms`` or ``1m30s``."""
    if not _DURATION.match(value):
        raise ValueError(f"invalid duration {value!r}: use a number with a unit, e.g. 250ms, 1.5s, 1m30s")
    return round(sum(float(n) * _UNIT_MS[u] for n, u in _DURATION_PART.findall(value)))


#: protobuf Duration's range (10,000 years): every duration ends up in one.
MAX_DURATION_MS = 315_576_000_000_000


def _check_duration(value: str) -> str:
    if duration_ms(value) > MAX_DURATION_MS:
        raise ValueError("must be at most 315576000000s (the largest protobuf Duration)")
    return value


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    Field(json_schema_extra={"pattern": DURATION_PATTERN}, description="A duration such as 250ms, 1.5s or 1m30s."),
]


#: ``Enforce`` (the default): in force. ``Shadow``: evaluated and counted, never acted on (only where Envoy can
#: measure without acting, see docs/policy-modes.md). ``Off``: stored and validated, but out of the config.
def _mode_not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError('write "Off" in quotes: YAML reads a bare Off (or On/No/Yes) as a boolean')
    return value


PolicyMode = Annotated[Literal["Enforce", "Shadow", "Off"], BeforeValidator(_mode_not_bool)]
MODE_DESCRIPTION = (
    "Enforce: in force. Shadow: evaluated and counted, never acted on (where the kind supports it). "
    "Off: validated and kept, but not in any proxy's config."
)
Percent = Annotated[float, Field(ge=0, le=100, description="A percentage, 0–100.")]
DnsLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]


def cel(*rules: tuple[str, str]) -> ConfigDict:
    """Cross-field rules for the CRD schema: ``(CEL expression, message)`` pairs.

    The same rules are enforced in Python by ``mesh_operator.validation`` (with field paths); CEL makes the
    Kubernetes API server refuse them too, before any controller sees the object.
    """
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]})


#: For string matches with a ``type`` and a ``value``: ``Present`` takes no value, every other type needs one.
VALUE_UNLESS_PRESENT = cel(
    ("self.type == 'Present' || (has(self.value) && size(self.value) > 0)", "value is required unless type is Present"),
    ("self.type != 'Present' || !has(self.value)", "value must be empty when type is Present"),
)


class Model(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields rejected, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=True,
    )


class ObjectMeta(BaseModel):
    """The part of Kubernetes metadata Meshwork reads. Other fields are kept but ignored."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: DnsLabel
    namespace: str = "default"
    generation: int = 1
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: str | None = Field(default=None, alias="creationTimestamp")


class TargetRef(Model):
    """What a policy applies to: a Service in the policy's namespace, or one named rule of a TrafficPolicy."""

    model_config = cel(
        ("self.kind == 'TrafficPolicy' || !has(self.sectionName)", "sectionName needs kind TrafficPolicy")
    )

    kind: Literal["Service", "TrafficPolicy"] = "Service"
    name: DnsLabel
    section_name: str | None = Field(default=None, description="A rule name of the TrafficPolicy.")


class ServiceRef(Model):
    """A Service in the policy's namespace."""

    kind: Literal["Service"] = "Service"
    name: DnsLabel


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: str | None = None


class RejectedBy(Model):
    """A proxy that rejected the config carrying the policy, with Envoy's NACK text."""

    proxy: str
    message: str = ""


class ProxyReceipts(Model):
    """Delivery receipts: of the proxies whose config carries the policy, how many ACKed it, who rejected it."""

    affected: int = 0
    applied: int = 0
    rejected: list[RejectedBy] = Field(default_factory=list)
    summary: str = Field(default="", description="applied/affected, for the APPLIED printer column")


class PolicyStatus(Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    proxies: ProxyReceipts | None = None
