"""AccessPolicy -> RBAC rules for the inbound side of the target service's instances."""

from __future__ import annotations

from mesh_operator.api import AccessPolicy
from mesh_operator.api.access_policy import AccessRule, Operation, Source
from mesh_operator.translate.authentication import request_principal
from xds_server import ir
from xds_server.ir.routes import MatchKind

_HEADER_KIND: dict[str, MatchKind] = {"Exact": "exact", "Prefix": "prefix", "Present": "present"}


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def rbac_policies(policies: list[AccessPolicy], trust_domain: str) -> tuple[ir.RbacPolicy, ...]:
    """One IR policy per (AccessPolicy, action), ordered by policy name for stable output."""
    out: list[ir.RbacPolicy] = []
    for p in sorted(policies, key=lambda p: (p.metadata.namespace, p.metadata.name)):
        prov = ir.Provenance(p.kind, p.metadata.namespace, p.metadata.name, p.metadata.generation)
        for action in ("Deny", "Allow"):
            rules = tuple(_rule(rule, i, trust_domain) for i, rule in enumerate(p.spec.rules) if rule.action == action)
            if rules:
                out.append(ir.RbacPolicy(prov, "deny" if action == "Deny" else "allow", rules, p.spec.mode == "Shadow"))
    return tuple(out)


def _rule(rule: AccessRule, index: int, trust_domain: str) -> ir.AccessRule:
    # No `from`: a Deny applies to every caller, identified or not; an Allow to every identity of this mesh.
    anyone = (
        ir.Principal(any=True) if rule.action == "Deny" else ir.Principal(spiffe_prefix=f"spiffe://{trust_domain}/")
    )
    principals = tuple(_principal(s, trust_domain) for s in rule.from_) or (anyone,)
    return ir.AccessRule(
        name=rule.name or f"rule-{index}",
        principals=principals,
        requests=tuple(_request(op) for op in rule.to),
    )


def _principal(s: Source, trust_domain: str) -> ir.Principal:
    if s.request_principals is not None or s.claims is not None:
        return ir.Principal(request=request_principal(s))
    if s.service_account is not None:
        return ir.Principal(spiffe_exact=spiffe_id(trust_domain, s.service_account.namespace, s.service_account.name))
    if s.namespace is not None:
        return ir.Principal(spiffe_prefix=f"spiffe://{trust_domain}/ns/{s.namespace}/")
    assert s.spiffe_id is not None
    return ir.Principal(spiffe_exact=s.spiffe_id.exact, spiffe_prefix=s.spiffe_id.prefix)


def _request(op: Operation) -> ir.RequestMatch:
    return ir.RequestMatch(
        paths=tuple(ir.PathMatch("exact" if p.type == "Exact" else "prefix", p.value) for p in op.paths),
        methods=tuple(op.methods),
        headers=tuple(ir.HeaderMatch(h.name.lower(), _HEADER_KIND[h.type], h.value or "") for h in op.headers),
        ignore_case=op.case_insensitive,
    )
