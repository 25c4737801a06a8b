"""Which policy applies where: validation, target lookup and deterministic conflict resolution.

Conflicts resolve the way Kubernetes users expect: the oldest policy wins (creation time, then namespace/name);
the others are marked ``Accepted=False`` with reason ``Conflicted`` and name the winner.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial

from mesh_operator.api import AccessPolicy, AuthenticationPolicy, RetryPolicy, TrafficPolicy
from mesh_operator.translate.memo import IdentityMemo
from mesh_operator.translate.state import MeshState, Policy
from mesh_operator.translate.status import CONFLICTED, INVALID, TARGET_NOT_FOUND, PolicyKey, PolicyOutcome
from mesh_operator.validation import errors, validate_object, warnings
from mesh_operator.validation.violations import Violation

#: Validation results of unchanged policy objects are reused across translations.
_VALIDATED: IdentityMemo[list[Violation]] = IdentityMemo()


def key_of(p: Policy) -> PolicyKey:
    return PolicyKey(p.kind, p.metadata.namespace, p.metadata.name)


def _age(p: Policy) -> tuple[str, str, str]:
    # Missing timestamps (local files) sort after real ones, then by name: deterministic either way.
    return (p.metadata.creation_timestamp or "~", p.metadata.namespace, p.metadata.name)


@dataclass
class Resolved:
    """The accepted policies, indexed by the service (``namespace/name``) they apply to."""

    traffic: dict[str, TrafficPolicy] = field(default_factory=dict)
    #: service -> service-wide RetryPolicy
    retry: dict[str, RetryPolicy] = field(default_factory=dict)
    #: (service, rule name) -> RetryPolicy for that rule
    rule_retry: dict[tuple[str, str], RetryPolicy] = field(default_factory=dict)
    access: dict[str, list[AccessPolicy]] = field(default_factory=lambda: defaultdict(list))
    authn: dict[str, list[AuthenticationPolicy]] = field(default_factory=lambda: defaultdict(list))
    outcomes: dict[PolicyKey, PolicyOutcome] = field(default_factory=dict)


def resolve(state: MeshState) -> Resolved:
    r = Resolved()
    valid: list[Policy] = []
    for p in sorted(state.policies, key=_age):
        outcome = PolicyOutcome(p.metadata.generation)
        r.outcomes[key_of(p)] = outcome
        found = _VALIDATED.get((p,), partial(validate_object, p))
        if errors(found):
            outcome.reject(INVALID, *errors(found))
            continue
        if warnings(found):
            outcome.warn(*warnings(found))
        target = f"{p.metadata.namespace}/{p.spec.target_ref.name}"
        if p.spec.target_ref.kind == "Service" and target not in state.services:
            outcome.reject(TARGET_NOT_FOUND, Violation("spec.targetRef", f"service {target} does not exist"))
            continue
        if p.spec.mode == "Off":
            outcome.switch_off()
            continue
        valid.append(p)

    traffic_by_name: dict[str, TrafficPolicy] = {}
    for p in valid:
        if isinstance(p, TrafficPolicy):
            svc = f"{p.metadata.namespace}/{p.spec.target_ref.name}"
            if svc in r.traffic:
                winner = r.traffic[svc]
                _conflict(r, p, winner, f"service {svc} already has TrafficPolicy {winner.metadata.name}")
            else:
                r.traffic[svc] = p
                traffic_by_name[f"{p.metadata.namespace}/{p.metadata.name}"] = p
    for p in valid:
        if isinstance(p, RetryPolicy):
            _place_retry(r, p, traffic_by_name)
        elif isinstance(p, AccessPolicy):
            r.access[f"{p.metadata.namespace}/{p.spec.target_ref.name}"].append(p)
        elif isinstance(p, AuthenticationPolicy):
            r.authn[f"{p.metadata.namespace}/{p.spec.target_ref.name}"].append(p)
    return r


def _place_retry(r: Resolved, p: RetryPolicy, traffic_by_name: dict[str, TrafficPolicy]) -> None:
    ref = p.spec.target_ref
    if ref.kind == "Service":
        svc = f"{p.metadata.namespace}/{ref.name}"
        if svc in r.retry:
            _conflict(r, p, r.retry[svc], f"service {svc} already has RetryPolicy {r.retry[svc].metadata.name}")
        else:
            r.retry[svc] = p
        return
    tp = traffic_by_name.get(f"{p.metadata.namespace}/{ref.name}")
    rule_names = {rule.name for rule in tp.spec.rules} if tp else set()
    if tp is None or ref.section_name not in rule_names:
        what = f"TrafficPolicy {ref.name}" if tp is None else f"rule {ref.section_name!r} of TrafficPolicy {ref.name}"
        r.outcomes[key_of(p)].reject(TARGET_NOT_FOUND, Violation("spec.targetRef", f"{what} does not exist"))
        return
    svc = f"{tp.metadata.namespace}/{tp.spec.target_ref.name}"
    slot = (svc, ref.section_name or "")
    if slot in r.rule_retry:
        _conflict(r, p, r.rule_retry[slot], f"rule {ref.section_name!r} already has a RetryPolicy")
    else:
        r.rule_retry[slot] = p


def _conflict(r: Resolved, loser: Policy, winner: Policy, why: str) -> None:
    r.outcomes[key_of(loser)].reject(
        CONFLICTED, Violation("spec.targetRef", f"{why} (older policies win; {winner.metadata.name} is older)")
    )
