"""How Gateway API routes and Meshwork's own policies meet on one Service: the conflicts become conditions."""

from __future__ import annotations

from mesh_operator.translate.gateway import GatewayRouting, route_key
from mesh_operator.translate.policies import Resolved, key_of
from mesh_operator.validation.violations import Violation


def warn_superseded(gateway: GatewayRouting, resolved: Resolved) -> None:
    """A TrafficPolicy whose ``rules`` are replaced by Gateway API routes for some or all callers gets a warning
    (``AcceptedWithWarnings``) naming the routes; its connection settings stay in force."""
    for service, routes in sorted(gateway.routed_services().items()):
        tp = resolved.traffic.get(service)
        if tp is None or not tp.spec.rules:
            continue
        names = ", ".join(sorted({str(route_key(r)) for r in routes}))
        warning = Violation(
            "spec.rules",
            f"superseded by {names} for the callers those routes apply to (Gateway API routes take precedence "
            "over TrafficPolicy rules; load balancing, circuit breaking, outlier detection, health checks and "
            "the connect timeout still apply)",
            "warning",
        )
        outcome = resolved.outcomes[key_of(tp)]
        if warning not in outcome.violations:
            outcome.warn(warning)
