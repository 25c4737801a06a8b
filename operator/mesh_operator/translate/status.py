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
        return text

    def condition(self) -> dict[str, object]:
        return {
            "type": "Accepted",
            "status": "True" if self.accepted else "False",
            "reason": self.reason,
            "message": self.message or "the policy is in force",
            "observedGeneration": self.generation,
        }
