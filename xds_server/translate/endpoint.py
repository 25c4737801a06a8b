"""Endpoints (EDS ``ClusterLoadAssignment``): grouped by locality; with locality-aware LB, by priority too.

Locality-aware: priority 0 = the proxy's own zone, 1 = its region, 2 = elsewhere (empty levels are skipped, as
Envoy requires contiguous priorities from 0). Envoy fails over to the next priority as hosts turn unhealthy
(overprovisioning factor 1.4). Each locality carries a ``load_balancing_weight`` (the sum of its endpoints'
weights) because the cluster uses locality-weighted LB, which ignores localities without a weight.
"""

from __future__ import annotations

from envoy_data_plane.envoy.config.core.v3 import Locality
from envoy_data_plane.envoy.config.endpoint.v3 import (
    ClusterLoadAssignment,
    Endpoint,
    LbEndpoint,
    LocalityLbEndpoints,
)

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate._shared import shared
from xds_server.translate.listener_outbound import address
from xds_server.translate.metadata import metadata


def _proximity(e: ir.Endpoint, region: str, zone: str) -> int:
    if region and e.region == region and (e.zone == zone and zone):
        return 0
    if region and e.region == region:
        return 1
    return 2


@shared(262_144)
def lb_endpoint(e: ir.Endpoint) -> LbEndpoint:
    """Shared (an endpoint is listed by its subset's and its service's cluster): never mutate it."""
    return new(
        LbEndpoint,
        endpoint=new(Endpoint, address=address(e.address, e.port)),
        load_balancing_weight=e.weight,
        metadata=metadata([], instance=e.instance),
    )


def load_assignment(c: ir.Cluster, region: str = "", zone: str = "") -> ClusterLoadAssignment:
    """``region``/``zone`` are the proxy's own, used only when ``c.lb.locality_aware``."""
    aware = c.lb.locality_aware
    groups: dict[tuple[int, str, str], list[ir.Endpoint]] = {}
    for e in c.endpoints:
        level = _proximity(e, region, zone) if aware else 0
        groups.setdefault((level, e.region, e.zone), []).append(e)
    levels = {lvl: i for i, lvl in enumerate(sorted({k[0] for k in groups}))}
    localities = [
        new(
            LocalityLbEndpoints,
            locality=new(Locality, region=reg, zone=zn) if (reg or zn) else None,
            lb_endpoints=[lb_endpoint(e) for e in eps],
            priority=levels[lvl],
            load_balancing_weight=sum(e.weight for e in eps) if aware else None,
        )
        for (lvl, reg, zn), eps in sorted(groups.items())
    ]
    return new(ClusterLoadAssignment, cluster_name=c.name, endpoints=localities)
