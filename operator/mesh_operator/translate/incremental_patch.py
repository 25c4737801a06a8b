"""The IR of a proxy patched after a change of some services it calls (part of
:mod:`mesh_operator.translate.incremental`): what ``ProxyBuilder.build`` gives, from the previous IR."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import replace

from mesh_operator.translate.proxy import ProxyBuilder
from mesh_operator.translate.state import ServiceInfo
from mesh_operator.translate.traffic import ServiceRouting
from xds_server import ir
from xds_server.layered import LayeredSeq


def patch_ir(
    builder: ProxyBuilder,
    targets: Mapping[str, ServiceInfo],
    prev: ir.ProxyConfig | None,
    positions: Mapping[str, tuple[int, ...]] | None,
    services: Iterable[str],
    previous: Mapping[str, ServiceRouting],
) -> tuple[ir.ProxyConfig, tuple[int, ...], tuple[int, ...]] | None:
    """A proxy whose workload and served services are unchanged, after a change of some services it calls
    (``targets``: the services now): its previous IR ``prev`` with those services' listeners and clusters
    replaced (what ``builder.build(w)`` gives), and the positions replaced. ``positions``: service host -> the
    positions of its outbound listeners in ``prev``. None where that is not certain (no previous IR, a
    transparent proxy, a service appearing or disappearing, other cluster names); the caller leaves out tracing."""
    if prev is None or positions is None or prev.transparent is not None:
        return None
    # (the new tuples are layered on the previous ones: no copy of a large proxy's 10^4-10^5 elements)
    outbound: dict[int, ir.OutboundListener] = {}
    clusters: dict[int, ir.Cluster] = {}
    old_clusters = prev.clusters
    for key in services:
        target, old = targets.get(key), previous.get(key)
        if target is None or old is None:
            return None
        at = positions.get(target.host)
        if not at:
            return None
        new = builder.routing(key)
        if len(new.clusters) != len(old.clusters):
            return None
        for i in at:
            outbound[i] = builder.outbound_listener(key, target, new, prev.outbound[i].port)
        for a, b in zip(old.clusters, new.clusters, strict=True):
            i = bisect_left(old_clusters, a.name, key=_name)
            # the IR holds the old cluster (the previous IR's, or one this call put there already)
            if a.name != b.name or i == len(old_clusters) or clusters.get(i, old_clusters[i]) is not a:
                return None
            clusters[i] = b
    cfg = replace(
        prev, outbound=LayeredSeq.over(prev.outbound, outbound), clusters=LayeredSeq.over(prev.clusters, clusters)
    )
    return cfg, tuple(sorted(outbound)), tuple(sorted(clusters))


def _name(c: ir.Cluster) -> str:
    return c.name


def positions_of(cfg: ir.ProxyConfig) -> dict[str, tuple[int, ...]]:
    out: dict[str, list[int]] = {}
    for i, lis in enumerate(cfg.outbound):
        out.setdefault(lis.service, []).append(i)
    return {host: tuple(at) for host, at in out.items()}
