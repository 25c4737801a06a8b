"""Per-policy status: which policies are accepted, and why not.

Conditions follow Kubernetes conventions: ``Accepted`` is ``True`` (reason ``Accepted`` or
``AcceptedWithWarnings``) or ``False`` with a reason a user can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mesh_operator.validation.violations import Violation

INVALID = "Invalid"
TARGET_NOT_FOUND = "TargetNotFound"
CONFLICTED = "Conflicted"
#: Envoy refused the config the policy produced (found by the pre-flight check, before any proxy saw it).
REJECTED_BY_ENVOY = "RejectedByEnvoy"
#: Translating the policy raised: a bug of ours, contained to this policy.
TRANSLATION_FAILED = "TranslationFailed"
#: Accepted (valid, target found) but ``mode: Off``: in no proxy's config.
OFF = "Off"
OFF_MESSAGE = "mode is Off: the policy is validated and kept, but no proxy's config carries it"


@dataclass(frozen=True, slots=True)
class PolicyKey:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass
class PolicyOutcome:
    """What translation decided about one policy."""

    generation: int
    accepted: bool = True
    reason: str = "Accepted"
    violations: list[Violation] = field(default_factory=list)
    #: When this version is refused: the generation of the last accepted version, which stays in force.
    previous_in_force: int | None = None

    def reject(self, reason: str, *violations: Violation) -> None:
        if self.accepted:
            self.accepted, self.reason = False, reason
        self.violations.extend(violations)

    def switch_off(self) -> None:
        if self.accepted:
            self.reason = OFF

    def warn(self, *violations: Violation) -> None:
        self.violations.extend(violations)
        if self.accepted and self.reason != OFF:
            self.reason = "AcceptedWithWarnings"

    @property
    def message(self) -> str:
        text = "; ".join(str(v) for v in self.violations)
        if self.reason == OFF:
            return f"{OFF_MESSAGE}; {text}" if text else OFF_MESSAGE
        if not self.accepted:
            kept = (
                f"the last accepted version (generation {self.previous_in_force}) stays in force"
                if self.previous_in_force is not None
                else "the policy is not in force"
            )
            return f"{text}; {kept}" if text else kept
        return text

    def condition(self) -> dict[str, object]:
        return {
            "type": "Accepted",
            "status": "True" if self.accepted else "False",
            "reason": self.reason,
            "message": self.message or "accepted",
            "observedGeneration": self.generation,
        }
