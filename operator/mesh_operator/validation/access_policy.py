"""Rules an AccessPolicy must follow beyond its schema."""

from __future__ import annotations

from mesh_operator.api.access_policy import AccessPolicy
from mesh_operator.validation.matchers import validate_value_match
from mesh_operator.validation.request_principals import validate_request_source
from mesh_operator.validation.violations import Collector


def validate_access_policy(policy: AccessPolicy, c: Collector) -> None:
    s = c.at("spec")
    for i, rule in enumerate(policy.spec.rules):
        rc = s.at("rules", i)
        for j, src in enumerate(rule.from_):
            set_fields = [f for f in ("service_account", "namespace", "spiffe_id") if getattr(src, f) is not None]
            if src.request_principals is not None or src.claims is not None:
                set_fields.append("request")
                validate_request_source(src, rc.at("from", j))
            if len(set_fields) != 1:
                rc.at("from", j).error(
                    None, "set exactly one of serviceAccount, namespace, spiffeId, or requestPrincipals/claims"
                )
            if src.spiffe_id is not None and (src.spiffe_id.exact is None) == (src.spiffe_id.prefix is None):
                rc.at("from", j).error("spiffeId", "set exactly one of exact, prefix")
        for j, op in enumerate(rule.to):
            oc = rc.at("to", j)
            for k, h in enumerate(op.headers):
                validate_value_match(h.type, h.value, oc.at("headers", k))
            for k, p in enumerate(op.paths):
                if any(seg in ("..", ".") for seg in p.value.split("/")) or "//" in p.value:
                    oc.at("paths", k).error("value", "use a normalized path; requests are matched after normalization")
    names = [r.name for r in policy.spec.rules if r.name]
    if len(names) != len(set(names)):
        s.error("rules", "rule names must be unique")
