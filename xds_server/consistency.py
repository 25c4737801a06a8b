"""A snapshot is consistent when everything its listeners and clusters refer to is in it.

In state-of-the-world xDS a missing resource means "delete", so a snapshot that lists a listener whose route
configuration (RDS), or a cluster whose endpoints (EDS), or a TLS context whose secret (SDS) is absent would
break that proxy. The translator builds them together, so this never fires unless there is a bug; the control
plane checks every snapshot anyway and keeps the proxy's previous snapshot when it does.
"""

from __future__ import annotations

from xds_server import ir
from xds_server.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, Snapshot


def missing_references(cfg: ir.ProxyConfig, snapshot: Snapshot) -> list[str]:
    """What ``cfg``'s resources refer to but ``snapshot`` lacks, as ``Type/name`` strings (empty when consistent)."""
    wanted: list[tuple[str, str]] = []
    listeners: list[ir.InboundListener | ir.OutboundListener] = [*cfg.inbound, *cfg.outbound]
    for listener in listeners:
        wanted.append((LISTENER, listener.name))
        if listener.protocol == "http":
            wanted.append((ROUTE, listener.name))
    for cluster in cfg.clusters:
        wanted += [(CLUSTER, cluster.name), (ENDPOINT, cluster.name)]
    wanted += [(SECRET, cfg.mesh.cert_secret), (SECRET, cfg.mesh.bundle_secret)]
    return [f"{t.rsplit('.', 1)[-1]}/{name}" for t, name in wanted if name not in snapshot.of_type(t)]
