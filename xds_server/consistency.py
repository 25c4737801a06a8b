"""A snapshot is consistent when everything its listeners and clusters refer to is in it.

In state-of-the-world xDS a missing resource means "delete", so a snapshot that lists a listener whose route
configuration (RDS), or a cluster whose endpoints (EDS), or a TLS context whose secret (SDS) is absent would
break that proxy. The translator builds them together, so this never fires unless there is a bug; the control
plane checks every snapshot anyway and keeps the proxy's previous snapshot when it does.

:func:`still_consistent` checks a changed proxy against its last consistent config in time proportional to the
change, when the change is carried as layers (:mod:`xds_server.layered`): what keeps the check of an edge proxy
with tens of thousands of clusters off every round's path.
"""

from __future__ import annotations

from collections.abc import Sequence

from xds_server import ir
from xds_server.layered import changed_since, key_container, positions_since
from xds_server.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, Snapshot


def missing_references(cfg: ir.ProxyConfig, snapshot: Snapshot) -> list[str]:
    """What ``cfg``'s resources refer to but ``snapshot`` lacks, as ``Type/name`` strings (empty when consistent)."""
    listeners: list[ir.InboundListener | ir.OutboundListener] = [*cfg.inbound, *cfg.outbound]
    if _complete(cfg, listeners, cfg.clusters, snapshot):  # the usual case, checked per type without the list below
        return []
    wanted: list[tuple[str, str]] = []
    for listener in listeners:
        wanted.append((LISTENER, listener.name))
        if listener.protocol == "http":
            wanted.append((ROUTE, listener.name))
    for cluster in cfg.clusters:
        wanted += [(CLUSTER, cluster.name), (ENDPOINT, cluster.name)]
    wanted += [(SECRET, cfg.mesh.cert_secret), (SECRET, cfg.mesh.bundle_secret)]
    return [f"{t.rsplit('.', 1)[-1]}/{name}" for t, name in wanted if name not in snapshot.of_type(t)]


def still_consistent(old_cfg: ir.ProxyConfig, old: Snapshot, cfg: ir.ProxyConfig, snapshot: Snapshot) -> bool:
    """True when ``missing_references(cfg, snapshot)`` is empty, told from the change since ``old_cfg`` and ``old``
    (which had nothing missing): the outbound listeners and clusters at the positions that changed, the inbound
    listeners and the secrets; no key of the other types removed. False when that does not tell (the change is
    not carried as layers, or a resource was removed): then ask :func:`missing_references`."""
    outbound = _positions(old_cfg.outbound, cfg.outbound)
    clusters = _positions(old_cfg.clusters, cfg.clusters)
    if outbound is None or clusters is None:
        return False
    for t in (LISTENER, ROUTE, CLUSTER, ENDPOINT):
        was, now = old.of_type(t), snapshot.of_type(t)
        if was is not now:
            keys = changed_since(was, now)
            if keys is None or any(k not in now for k in keys if k in was):
                return False
    listeners: list[ir.InboundListener | ir.OutboundListener] = [*cfg.inbound, *(cfg.outbound[i] for i in outbound)]
    return _complete(cfg, listeners, [cfg.clusters[i] for i in clusters], snapshot)


def _complete(
    cfg: ir.ProxyConfig,
    listeners: list[ir.InboundListener | ir.OutboundListener],
    clusters: Sequence[ir.Cluster],
    snapshot: Snapshot,
) -> bool:
    """Whether ``snapshot`` holds what these listeners and clusters refer to, and ``cfg``'s two secrets."""
    have_listeners, have_routes = key_container(snapshot.of_type(LISTENER)), key_container(snapshot.of_type(ROUTE))
    have_clusters, have_endpoints = key_container(snapshot.of_type(CLUSTER)), key_container(snapshot.of_type(ENDPOINT))
    have_secrets = key_container(snapshot.of_type(SECRET))
    return (
        all(listener.name in have_listeners for listener in listeners)
        and all(listener.name in have_routes for listener in listeners if listener.protocol == "http")
        and all(cluster.name in have_clusters and cluster.name in have_endpoints for cluster in clusters)
        and cfg.mesh.cert_secret in have_secrets
        and cfg.mesh.bundle_secret in have_secrets
    )


def _positions(old: Sequence[object], new: Sequence[object]) -> set[int] | None:
    """The positions where ``new`` may differ from ``old`` (none when they are one object), or None when they are
    not layered one on the other."""
    if old is new:
        return set()
    at = positions_since(old, new)
    return None if at is None else set(at)
