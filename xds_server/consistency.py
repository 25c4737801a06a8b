"""A snapshot is consistent when everything its listeners and clusters refer to is in it.

In state-of-the-world xDS a missing resource means "delete", so a snapshot that lists a listener whose route
configuration (RDS), or a cluster whose endpoints (EDS), or a TLS context whose secret (SDS) is absent would
break that proxy. The translator builds them together, so this never fires unless there is a bug; the control
plane checks every snapshot anyway and keeps the proxy's previous snapshot when it does.
"""

from __future__ import annotations

from xds_server import ir
from xds_server.layered import key_container
from xds_server.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, Snapshot


def missing_references(cfg: ir.ProxyConfig, snapshot: Snapshot) -> list[str]:
    """What ``cfg``'s resources refer to but ``snapshot`` lacks, as ``Type/name`` strings (empty when consistent)."""
    listeners: list[ir.InboundListener | ir.OutboundListener] = [*cfg.inbound, *cfg.outbound]
    if _complete(cfg, listeners, snapshot):  # the usual case, checked per type without building the list below
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


def _complete(
    cfg: ir.ProxyConfig, listeners: list[ir.InboundListener | ir.OutboundListener], snapshot: Snapshot
) -> bool:
    have_listeners, have_routes = key_container(snapshot.of_type(LISTENER)), key_container(snapshot.of_type(ROUTE))
    have_clusters, have_endpoints = key_container(snapshot.of_type(CLUSTER)), key_container(snapshot.of_type(ENDPOINT))
    have_secrets = key_container(snapshot.of_type(SECRET))
    return (
        all(listener.name in have_listeners for listener in listeners)
        and all(listener.name in have_routes for listener in listeners if listener.protocol == "http")
        and all(cluster.name in have_clusters and cluster.name in have_endpoints for cluster in cfg.clusters)
        and cfg.mesh.cert_secret in have_secrets
        and cfg.mesh.bundle_secret in have_secrets
    )
