"""The status of one policy, as written to its ``status`` subresource. Pure: outcome + receipt in, a dict out.

::

    status:
      observedGeneration: 3
      conditions:
      - {type: Accepted,     status: "True",  reason: Accepted,   observedGeneration: 3, ...}
      - {type: ResolvedRefs, status: "True",  reason: ResolvedRefs, ...}   # False: TargetNotFound, with the name
      - {type: Programmed,   status: "True",  reason: Programmed, message: in the config of 4 proxies, ...}
      proxies:
        affected: 4          # proxies whose config carries this policy
        applied: 3           # of those, how many ACKed the config version that carries this generation
        rejected: [{proxy: shop/frontend-1, message: "<Envoy's NACK text>"}]
        summary: 3/4         # the APPLIED printer column

``Accepted`` is about the policy itself (its fields; ``Conflicted`` when an older policy holds the same slot),
``ResolvedRefs`` about what it points at, ``Programmed`` about the snapshots. Conditions keep their
``lastTransitionTime`` while their status does not change, so rewriting an unchanged status is a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from mesh_operator.translate import PolicyOutcome
from mesh_operator.translate.status import TARGET_NOT_FOUND
from mesh_operator.validation.violations import Violation

#: Envoy's NACK text can be long; status stays small.
MAX_MESSAGE = 1024
MAX_REJECTED = 20


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "observedGeneration": generation,
    }


def policy_status(
    outcome: PolicyOutcome | None,
    receipt: Mapping[str, Any] | None,
    *,
    generation: int,
    schema_violations: Sequence[Violation] = (),
) -> dict[str, Any]:
    """The desired status (without transition times; :func:`with_transition_times` adds them)."""
    if outcome is None:
        message = "; ".join(str(v) for v in schema_violations) or "not translated yet"
        reason = "Invalid" if schema_violations else "Pending"
        conditions = [
            _condition("Accepted", False, reason, message, generation),
            _condition("ResolvedRefs", False, reason, "not checked: the policy is not accepted", generation),
            _condition("Programmed", False, reason, "not in any proxy's config", generation),
        ]
        return {"observedGeneration": generation, "conditions": conditions, "proxies": _proxies(None)}
    generation = outcome.generation
    missing = outcome.reason == TARGET_NOT_FOUND
    accepted = outcome.accepted or missing
    accepted_reason = outcome.reason
    if missing:
        others = [v for v in outcome.violations if v.path != "spec.targetRef"]
        accepted_msg = "; ".join(str(v) for v in others) or "the policy is valid"
        accepted_reason = "AcceptedWithWarnings" if others else "Accepted"
    else:
        accepted_msg = outcome.message or "the policy is valid"
    target_msg = "; ".join(str(v) for v in outcome.violations if v.path == "spec.targetRef")
    conditions = [
        _condition("Accepted", accepted, accepted_reason, accepted_msg, generation),
        _condition(
            "ResolvedRefs",
            not missing,
            TARGET_NOT_FOUND if missing else "ResolvedRefs",
            target_msg if missing else "the target exists",
            generation,
        ),
    ]
    affected = int((receipt or {}).get("proxies", 0))
    if not outcome.accepted:
        programmed = _condition("Programmed", False, outcome.reason, "not in any proxy's config", generation)
    elif affected == 0:
        programmed = _condition(
            "Programmed", False, "NoProxies", "no proxy's config carries this policy (no sidecar uses it)", generation
        )
    else:
        programmed = _condition("Programmed", True, "Programmed", f"in the config of {affected} proxies", generation)
    conditions.append(programmed)
    return {"observedGeneration": generation, "conditions": conditions, "proxies": _proxies(receipt)}


def _proxies(receipt: Mapping[str, Any] | None) -> dict[str, Any]:
    affected = int((receipt or {}).get("proxies", 0))
    applied = int((receipt or {}).get("applied", 0))
    rejected_by: Mapping[str, str] = (receipt or {}).get("rejected") or {}
    rejected = [{"proxy": p, "message": str(m)[:MAX_MESSAGE]} for p, m in sorted(rejected_by.items())]
    return {
        "affected": affected,
        "applied": applied,
        "rejected": rejected[:MAX_REJECTED],
        "summary": f"{applied}/{affected}",
    }


def with_transition_times(desired: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """``desired`` with each condition's ``lastTransitionTime`` kept from ``current`` while its status holds."""
    before = {c.get("type"): c for c in current.get("conditions") or [] if isinstance(c, Mapping)}
    now = _now()
    conditions = []
    for c in desired["conditions"]:
        prev = before.get(c["type"])
        same = prev is not None and prev.get("status") == c["status"] and prev.get("lastTransitionTime")
        conditions.append({**c, "lastTransitionTime": prev["lastTransitionTime"] if same and prev else now})
    return {**desired, "conditions": conditions}


def unchanged(desired: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """True when writing ``desired`` would change nothing a user can see (transition times aside)."""

    def strip(s: Mapping[str, Any]) -> Any:
        conditions = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"}
            for c in s.get("conditions") or []
            if isinstance(c, Mapping)
        ]
        return {**s, "conditions": conditions}

    return bool(strip(desired) == strip(current))
