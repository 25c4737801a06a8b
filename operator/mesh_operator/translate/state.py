"""The Kubernetes-free view of the mesh the translator reads: services, instances, workloads and policies.

In local mode it is built from an :class:`~mesh_operator.api.Inventory`; in Kubernetes from Services,
EndpointSlices and Pods. Either way the translator sees only this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from mesh_operator.api import AccessPolicy, AuthenticationPolicy, Inventory, Mesh, RetryPolicy, TrafficPolicy
from mesh_operator.api.common import ObjectMeta
from mesh_operator.api.gateway import GatewayRoute, GRPCRoute, HTTPRoute
from mesh_operator.api.inventory import Client, Instance, Upstream
from mesh_operator.validation.violations import Violation

Protocol = Literal["http", "http2", "tcp"]
Policy = TrafficPolicy | RetryPolicy | AccessPolicy | AuthenticationPolicy


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """One instance of a service, as peers reach it (its sidecar's inbound port)."""

    workload: str
    namespace: str
    address: str
    port: int
    labels: tuple[tuple[str, str], ...] = ()
    region: str = ""
    zone: str = ""
    service_account: str = "default"

    def has_labels(self, selector: dict[str, str]) -> bool:
        own = dict(self.labels)
        return all(own.get(k) == v for k, v in selector.items())


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    name: str
    namespace: str
    port: int
    protocol: Protocol
    instances: tuple[InstanceInfo, ...] = ()
    #: The Service's virtual IP, where captured (transparent-mode) callers dial it.
    cluster_ip: str | None = None
    #: The Service's other ports, each as a view of the same Service (its own port, protocol and instances, no
    #: ``other_ports`` of its own). This object is the first port's view.
    other_ports: tuple[ServiceInfo, ...] = ()

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def port_views(self) -> tuple[ServiceInfo, ...]:
        """Every port of the Service, the first one first."""
        return (self, *self.other_ports)

    def on_port(self, port: int | None) -> ServiceInfo | None:
        """The view of one of the Service's ports (``None``: the first port), or ``None`` if it has no such port."""
        if port is None:
            return self
        return next((v for v in self.port_views() if v.port == port), None)


@dataclass(frozen=True, slots=True)
class UpstreamInfo:
    service: str  # namespace/name
    local_port: int


@dataclass(frozen=True, slots=True)
class InboundInfo:
    """A service this workload serves: peers reach ``listen_port``; the app listens on ``app_port``."""

    service: str  # namespace/name
    listen_address: str
    listen_port: int
    app_address: str
    app_port: int


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """A proxy: one workload instance with its sidecar."""

    namespace: str
    name: str
    service_account: str
    region: str = ""
    zone: str = ""
    inbound: tuple[InboundInfo, ...] = ()
    upstreams: tuple[UpstreamInfo, ...] = ()
    admin_port: int | None = None
    command: tuple[str, ...] = ()
    #: The pod's traffic is captured: the proxy gets the transparent-mode listeners instead of explicit ports.
    transparent: bool = False

    @property
    def node_id(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Refused:
    """A policy the source could not even parse (schema errors): it gets a status, and the last accepted version
    of the same policy, if there is one, stays in force."""

    kind: str
    namespace: str
    name: str
    violations: tuple[Violation, ...]
    generation: int = 1


@dataclass(frozen=True)
class MeshState:
    mesh: Mesh
    # (Mappings / Sequences: a source may hand a map layered on the previous state's, or a tuple with a few
    # positions replaced, see xds_server.layered — the incremental translator then reads the delta off them)
    services: Mapping[str, ServiceInfo] = field(default_factory=dict)  # key: namespace/name
    workloads: Mapping[str, WorkloadInfo] = field(default_factory=dict)  # key: namespace/name
    policies: Sequence[Policy] = ()
    refused: tuple[Refused, ...] = ()
    #: Gateway API HTTPRoutes/GRPCRoutes (translate/gateway.py decides which attach to a Service).
    routes: tuple[GatewayRoute, ...] = ()


_PROTOCOLS: dict[str, Protocol] = {"HTTP": "http", "HTTP2": "http2", "TCP": "tcp"}


_DEFAULT_MESH = Mesh(metadata=ObjectMeta(name="default"))


def default_mesh() -> Mesh:
    """The settings in force when no Mesh object exists (one shared object, so memoized results stay valid)."""
    return _DEFAULT_MESH


def state_from_objects(objects: Iterable[object]) -> MeshState:
    """Build the state from already-validated API objects (inventories, a Mesh, policies)."""
    mesh: Mesh | None = None
    services: dict[str, ServiceInfo] = {}
    workloads: dict[str, WorkloadInfo] = {}
    policies: list[Policy] = []
    routes: list[GatewayRoute] = []
    for obj in objects:
        if isinstance(obj, Mesh):
            mesh = obj
        elif isinstance(obj, Inventory):
            _add_inventory(obj, services, workloads)
        elif isinstance(obj, TrafficPolicy | RetryPolicy | AccessPolicy | AuthenticationPolicy):
            policies.append(obj)
        elif isinstance(obj, HTTPRoute | GRPCRoute):
            routes.append(obj)
    return MeshState(mesh or default_mesh(), services, workloads, tuple(policies), routes=tuple(routes))


def _add_inventory(inv: Inventory, services: dict[str, ServiceInfo], workloads: dict[str, WorkloadInfo]) -> None:
    for svc in inv.spec.services:
        port = svc.ports[0]
        protocol = _PROTOCOLS[port.protocol]
        key = f"{svc.namespace}/{svc.name}"
        instances = []
        for inst in svc.instances:
            transparent = inst.sidecar.mode == "Transparent"
            # Transparent: peers dial the app's port on the pod address and are captured into the sidecar.
            listen = inst.port if transparent else inst.sidecar.inbound_port or inst.port
            instances.append(
                InstanceInfo(
                    workload=inst.name,
                    namespace=svc.namespace,
                    address=inst.address,
                    port=listen,
                    labels=tuple(sorted(inst.labels.items())),
                    region=inst.locality.region,
                    zone=inst.locality.zone,
                    service_account=inst.service_account,
                )
            )
            if transparent:
                inbound = (InboundInfo(key, "0.0.0.0", listen, "127.0.0.1", inst.port),)
            else:
                inbound = (InboundInfo(key, inst.address, listen, inst.address, inst.port),)
            workloads[f"{svc.namespace}/{inst.name}"] = _workload(inst, svc.namespace, inbound)
        cluster_ip = str(svc.cluster_ip) if svc.cluster_ip is not None else None
        services[key] = ServiceInfo(svc.name, svc.namespace, port.port, protocol, tuple(instances), cluster_ip)
    for client in inv.spec.clients:
        workloads[f"{client.namespace}/{client.name}"] = _workload(client, client.namespace)


def _workload(w: Instance | Client, namespace: str, inbound: tuple[InboundInfo, ...] = ()) -> WorkloadInfo:
    """A proxy: an instance of a service (with its inbound side) or a client that only calls."""
    return WorkloadInfo(
        namespace=namespace,
        name=w.name,
        service_account=w.service_account,
        region=w.locality.region,
        zone=w.locality.zone,
        inbound=inbound,
        upstreams=_upstreams(w.sidecar.upstreams, namespace),
        admin_port=w.sidecar.admin_port,
        command=tuple(w.command),
        transparent=w.sidecar.mode == "Transparent",
    )


def _upstreams(ups: Iterable[Upstream], namespace: str) -> tuple[UpstreamInfo, ...]:
    out = []
    for up in ups:
        name, _, ns = up.service.partition(".")
        out.append(UpstreamInfo(f"{ns or namespace}/{name}", up.local_port))
    return tuple(out)
