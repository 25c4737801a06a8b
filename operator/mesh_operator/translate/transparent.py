"""Stage 1 of transparent mode: the capture-side IR of a sidecar whose pod's traffic is captured.

Every Service in the sidecar's scope (:mod:`.scope`: all of them unless an egress declaration or AccessPolicies
narrow it) is reachable: by its ``ClusterIP:port`` (a listener of its own, the service's routes
or TCP proxy) and, for HTTP services, by ``Host`` on the port (``name`` from the same namespace only, then
``name.ns``, ``name.ns.svc``, ``name.ns.svc.cluster.local`` and the ClusterIP; Envoy strips any ``:port`` from
the Host before matching). A Service with several ports gets all of that on each of its ports, each port with its
own routing (Gateway API routes can attach to one port). The inbound chains are the local-mode inbound
listeners, one per served port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from typing import Final

from mesh_operator.translate.memo import IdentityMemo
from mesh_operator.translate.state import MeshState, ServiceInfo, WorkloadInfo
from mesh_operator.translate.traffic import ServiceRouting
from xds_server import ir

CLUSTER_DOMAIN: Final = "cluster.local"

_DESTINATION: IdentityMemo[ir.OutboundListener] = IdentityMemo(maxsize=262_144)


def domains(svc: ServiceInfo, caller_namespace: str) -> tuple[str, ...]:
    names = [svc.name] if svc.namespace == caller_namespace else []
    base = f"{svc.name}.{svc.namespace}"
    names += [base, f"{base}.svc", f"{base}.svc.{CLUSTER_DOMAIN}"]
    if svc.cluster_ip:
        names.append(svc.cluster_ip)
    return tuple(names)


def _destination(svc: ServiceInfo, routing: ServiceRouting) -> ir.OutboundListener:
    tcp = svc.protocol == "tcp"
    return ir.OutboundListener(
        name=f"outbound|{svc.cluster_ip}:{svc.port}|{svc.host}",
        address=svc.cluster_ip or "",
        port=svc.port,
        protocol="tcp" if tcp else "http",
        service=svc.host,
        routes=() if tcp else routing.routes,
        tcp_cluster=routing.clusters[0].name if tcp else None,
        provenance=routing.clusters[0].provenance,
        bind=False,
    )


def transparent_config(
    state: MeshState,
    w: WorkloadInfo,
    routing: Callable[..., ServiceRouting],
    inbound: Iterable[ir.InboundListener],
    clusters: dict[str, ir.Cluster],
    scope: frozenset[str] | None = None,
) -> ir.TransparentConfig:
    """The capture listeners' IR; adds the clusters of every service in ``scope`` (None: all) to ``clusters``."""
    destinations = []
    by_port: dict[int, list[ir.HostRoutes]] = {}
    endpoints: list[tuple[ir.Endpoint, ir.Cluster]] = []
    for key in sorted(state.services):
        in_scope = scope is None or key in scope
        for svc in state.services[key].port_views():
            # Every service's routing is computed, in scope or not: its policies' warnings do not depend on which
            # sidecars receive it (and the incremental translator relies on that).
            r = routing(key, port=svc.port)
            if not in_scope:
                continue
            for c in r.clusters:
                clusters[c.name] = c
            if svc.cluster_ip:
                destinations.append(_DESTINATION.get((r, svc.cluster_ip, svc.port), partial(_destination, svc, r)))
            if svc.protocol != "tcp":
                hosts = ir.HostRoutes(svc.host, domains(svc, w.namespace), r.routes)
                by_port.setdefault(svc.port, []).append(hosts)
                endpoints.extend((e, r.clusters[0]) for e in r.clusters[0].endpoints)
    _add_endpoint_hosts(endpoints, by_port, clusters)
    return ir.TransparentConfig(
        destinations=tuple(destinations),
        by_port=tuple(ir.PortRoutes(port, tuple(hosts)) for port, hosts in sorted(by_port.items())),
        inbound=tuple(inbound),
        registry_only=state.mesh.spec.outbound_traffic_policy == "RegistryOnly",
    )


def _add_endpoint_hosts(
    endpoints: list[tuple[ir.Endpoint, ir.Cluster]],
    by_port: dict[int, list[ir.HostRoutes]],
    clusters: dict[str, ir.Cluster],
) -> None:
    """A request to a mesh pod's own address (``Host: <pod IP>:<app port>``, on a port some HTTP Service uses) goes
    to that pod alone, over mTLS like any mesh request (its STRICT inbound refuses plain text), and no Service's
    routes apply to it. The first Service (by key, then port) that has the pod on that port gives the cluster."""
    seen: set[tuple[str, int]] = set()
    for e, service_cluster in endpoints:
        if (e.address, e.port) in seen or e.port not in by_port:
            continue
        seen.add((e.address, e.port))
        name = f"endpoint|{e.address}:{e.port}"
        clusters[name] = replace(
            service_cluster, name=name, endpoints=(e,), outlier=None, health_check=None, provenance=()
        )
        route = ir.Route(
            name=f"endpoint/{e.address}:{e.port}",
            match=ir.RouteMatch(),
            clusters=(ir.WeightedCluster(name, 100),),
            timeout_ms=0,
        )
        by_port[e.port].append(ir.HostRoutes(f"{e.address}:{e.port}", (e.address,), (route,)))
