"""Which policy applies where: validation, target lookup and deterministic conflict resolution.

Conflicts resolve the way Kubernetes users expect: the oldest policy wins (creation time, then namespace/name);
the others are marked ``Accepted=False`` with reason ``Conflicted`` and name the winner.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
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
_FINGERPRINTS: IdentityMemo[str] = IdentityMemo()


def key_of(p: Policy) -> PolicyKey:
    return PolicyKey(p.kind, p.metadata.namespace, p.metadata.name)


def fingerprint(p: Policy) -> str:
    """A content hash of the policy's generation and spec: tells one version of a policy from another, also in
    local mode where edits of a file do not bump the generation."""

    def compute() -> str:
        body = f"{p.metadata.generation}\n{p.spec.model_dump_json(by_alias=True)}".encode()
        return hashlib.sha256(body).hexdigest()[:16]

    return _FINGERPRINTS.get((p,), compute)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A verdict on one version of a policy reached after validation: Envoy refused its config in the pre-flight
    check, or translating it raised. Applies while the policy's fingerprint is the same."""

    fingerprint: str
    reason: str
    violations: tuple[Violation, ...]


def _validate(p: Policy) -> list[Violation]:
    try:
        return _VALIDATED.get((p,), partial(validate_object, p))
    except Exception as e:  # a bug of ours must not take the rest of the mesh down with it
        return [Violation("", f"internal error while validating ({type(e).__name__}: {e}); please report it")]


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
    #: the version of each policy that translation uses (the current one, or the last accepted one)
    used: dict[PolicyKey, Policy] = field(default_factory=dict)

    def in_force(self) -> dict[PolicyKey, Policy]:
        """The accepted current versions: what may become the last accepted version once delivered."""
        return {k: p for k, p in self.used.items() if self.outcomes[k].accepted}


def resolve(
    state: MeshState,
    last_good: Mapping[PolicyKey, Policy] | None = None,
    rejected: Mapping[PolicyKey, Rejection] | None = None,
) -> Resolved:
    """Validate, place and de-conflict every policy. A refused version of a policy (invalid, unparseable, or
    rejected after validation) is marked ``Accepted=False``; its last accepted version from ``last_good``, if any,
    stays in force so that a bad edit never takes config away."""
    r = Resolved()
    last_good = last_good or {}
    rejected = rejected or {}
    candidates: list[Policy] = []
    for p in sorted(state.policies, key=_age):
        key = key_of(p)
        outcome = PolicyOutcome(p.metadata.generation)
        r.outcomes[key] = outcome
        found = _validate(p)
        refusal = rejected.get(key)
        if errors(found):
            outcome.reject(INVALID, *errors(found))
        elif refusal is not None and refusal.fingerprint == fingerprint(p):
            outcome.reject(refusal.reason, *refusal.violations)
        elif warnings(found):
            outcome.warn(*warnings(found))
        if outcome.accepted:
            candidates.append(p)
        elif (previous := _previous(last_good.get(key), p)) is not None:
            outcome.previous_in_force = previous.metadata.generation
            candidates.append(previous)
    for refused in state.refused:
        key = PolicyKey(refused.kind, refused.namespace, refused.name)
        outcome = PolicyOutcome(refused.generation)
        outcome.reject(INVALID, *refused.violations)
        r.outcomes[key] = outcome
        if (previous := last_good.get(key)) is not None:
            outcome.previous_in_force = previous.metadata.generation
            candidates.append(previous)

    valid: list[Policy] = []
    for p in sorted(candidates, key=_age):
        target = f"{p.metadata.namespace}/{p.spec.target_ref.name}"
        if p.spec.target_ref.kind == "Service" and target not in state.services:
            outcome = r.outcomes[key_of(p)]
            outcome.previous_in_force = None
            outcome.reject(TARGET_NOT_FOUND, Violation("spec.targetRef", f"service {target} does not exist"))
            continue
        if isinstance(p, TrafficPolicy) and (problem := _protocol_problem(p, state)) is not None:
            outcome = r.outcomes[key_of(p)]
            outcome.previous_in_force = None
            outcome.reject(INVALID, problem)
            continue
        if p.spec.mode == "Off":
            r.outcomes[key_of(p)].switch_off()
            r.used[key_of(p)] = p
            continue
        valid.append(p)
        r.used[key_of(p)] = p

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


def _protocol_problem(p: TrafficPolicy, state: MeshState) -> Violation | None:
    """Rules that depend on the target's protocol (Envoy enforces them when it loads the cluster)."""
    svc = state.services[f"{p.metadata.namespace}/{p.spec.target_ref.name}"]
    hc = p.spec.health_check
    if hc is not None and hc.grpc is not None and svc.protocol != "http2":
        return Violation(
            "spec.healthCheck.grpc",
            f"needs service {svc.namespace}/{svc.name} to speak HTTP2 (its protocol is {svc.protocol.upper()}): "
            "gRPC health checks run over HTTP/2",
        )
    return None


def _previous(last: Policy | None, current: Policy) -> Policy | None:
    """The last accepted version, unless it is the very version now refused."""
    if last is None or fingerprint(last) == fingerprint(current):
        return None
    return last


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
        r.outcomes[key_of(p)].previous_in_force = None
        r.outcomes[key_of(p)].reject(TARGET_NOT_FOUND, Violation("spec.targetRef", f"{what} does not exist"))
        return
    svc = f"{tp.metadata.namespace}/{tp.spec.target_ref.name}"
    slot = (svc, ref.section_name or "")
    if slot in r.rule_retry:
        _conflict(r, p, r.rule_retry[slot], f"rule {ref.section_name!r} already has a RetryPolicy")
    else:
        r.rule_retry[slot] = p


def _conflict(r: Resolved, loser: Policy, winner: Policy, why: str) -> None:
    r.outcomes[key_of(loser)].previous_in_force = None
    r.outcomes[key_of(loser)].reject(
        CONFLICTED, Violation("spec.targetRef", f"{why} (older policies win; {winner.metadata.name} is older)")
    )
