"""Global rate limits: TrafficPolicy rules -> IR descriptors on the inbound routes, and the configuration of the
rate-limit service (``envoyproxy/ratelimit``), both from the same descriptors so they always agree.

Descriptor entries, as Envoy sends them and the service matches them:
``("descriptor", <key>)`` first (the key names policy, rule and descriptor), then per entry
``("header_<name>", value)``, ``("source_identity", <x-forwarded-client-cert of the verified peer>)`` or
``("remote_address", <peer address>)``. An entry without a value in the service's config counts each value
separately.
"""

from __future__ import annotations

from typing import Any

from mesh_operator.api.common import duration_ms
from mesh_operator.api.ratelimit_global import GlobalRateLimit
from mesh_operator.api.traffic_policy import TrafficPolicy
from mesh_operator.translate.policies import Resolved, key_of, resolve
from mesh_operator.translate.state import MeshState
from mesh_operator.validation.violations import Violation
from xds_server import ir

DOMAIN = "meshwork"


def descriptor_key(tp: TrafficPolicy, rule: str, name: str) -> str:
    return f"{tp.metadata.namespace}.{tp.metadata.name}.{rule}.{name}"


def global_rate_limit(tp: TrafficPolicy, rule: str, g: GlobalRateLimit) -> ir.GlobalRateLimit:
    descriptors = []
    for d in g.descriptors:
        entries: list[tuple[Any, str]] = []
        for e in d.entries:
            if e.header is not None:
                entries.append(("header", e.header.lower()))
            elif e.source_identity:
                entries.append(("source_identity", ""))
            else:
                entries.append(("remote_address", ""))
        descriptors.append(
            ir.GlobalDescriptor(descriptor_key(tp, rule, d.name), d.limit.requests, d.limit.unit, tuple(entries))
        )
    return ir.GlobalRateLimit(
        descriptors=tuple(descriptors),
        failure_deny=g.failure_mode == "Deny",
        timeout_ms=duration_ms(g.timeout),
        shadow=g.mode == "Shadow",
        status=g.response_status,
    )


def entry_key(kind: str, name: str) -> str:
    return f"header_{name}" if kind == "header" else kind


def _nested(d: ir.GlobalDescriptor) -> dict[str, Any]:
    limit = {"unit": d.unit, "requests_per_unit": d.requests}
    node: dict[str, Any] = {}
    for kind, name in reversed(d.entries):
        node = {"key": entry_key(kind, name), **({"descriptors": [node]} if node else {"rate_limit": limit})}
    top: dict[str, Any] = {"key": "descriptor", "value": d.key}
    if node:
        top["descriptors"] = [node]
    else:
        top["rate_limit"] = limit
    return top


def service_config(state: MeshState) -> dict[str, Any]:
    """The rate-limit service's configuration (one domain) for every accepted global limit of the mesh."""
    resolved = resolve(state)
    out: list[dict[str, Any]] = []
    for _svc, tp in sorted(resolved.traffic.items()):
        for i, rule in enumerate(tp.spec.rules):
            if rule.rate_limit is not None and rule.rate_limit.global_ is not None:
                g = global_rate_limit(tp, rule.name or f"rule-{i}", rule.rate_limit.global_)
                out.extend(_nested(d) for d in g.descriptors)
    return {"domain": DOMAIN, "descriptors": out}


def warn_without_service(resolved: Resolved) -> None:
    """Global limits need ``Mesh.spec.rateLimitService``; without it they are left out, with a warning."""
    for tp in resolved.traffic.values():
        for i, rule in enumerate(tp.spec.rules):
            if rule.rate_limit is not None and rule.rate_limit.global_ is not None:
                w = Violation(
                    f"spec.rules[{i}].rateLimit.global",
                    "not enforced: the Mesh has no spec.rateLimitService",
                    "warning",
                )
                outcome = resolved.outcomes[key_of(tp)]
                if w not in outcome.violations:
                    outcome.warn(w)
