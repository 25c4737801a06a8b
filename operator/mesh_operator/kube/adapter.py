"""Kubernetes objects -> the Kubernetes-free :class:`MeshState`: the one place core objects are adapted.

Pure: plain dicts (as the API returns them) in, a MeshState out; no client, no I/O.

- A **Service** (its first port) is a mesh service; its protocol comes from the port's ``appProtocol``
  (``http``, ``http2``/``kubernetes.io/h2c``/``grpc``, ``tcp``) or name prefix (``http-``, ``grpc-``, ``tcp-``),
  HTTP by default.
- Its **instances** are the ready endpoints of its EndpointSlices (label ``kubernetes.io/service-name``) whose
  ``targetRef`` is a Pod in the mesh. The instance's address is that Pod's IP (``status.podIP``): the slice says
  which pods back the service, the pod says where its sidecar is. An endpoint without a mesh pod is not routed
  to (its sidecar could not do mTLS).
- **Locality**: the endpoint's ``zone``, else the Node's ``topology.kubernetes.io/zone`` label; the region from
  the Node's ``topology.kubernetes.io/region`` label.
- **Identity**: the pod's ``spec.serviceAccountName`` (``default`` when unset).
- A Pod is **in the mesh** (it has a sidecar, so it is a proxy) when it carries the annotation
  ``meshwork.io/proxy: injected`` or has a container or init container named ``meshwork-proxy``, and is not
  terminating. Its sidecar ports come from annotations (explicit upstreams, as local mode and Consul do; the
  transparent-capture mode of the injection issue replaces them):
  ``meshwork.io/inbound-port`` (where peers reach it, default 15006), ``meshwork.io/admin-port`` (default
  15000), ``meshwork.io/upstreams`` (``backend:15101,reviews.shop:15102``: service[.namespace]:local port).
- A pod injected by the webhook (it has the capture init container ``meshwork-init``) is **transparent**: its
  traffic is captured, peers dial the app's port on the pod IP (redirected into the sidecar's inbound listener),
  and its sidecar gets the transparent-mode listeners, routing by the Services' **ClusterIPs** and Host names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mesh_operator.api import Mesh
from mesh_operator.translate.state import (
    InboundInfo,
    InstanceInfo,
    MeshState,
    Policy,
    Protocol,
    ServiceInfo,
    UpstreamInfo,
    WorkloadInfo,
    default_mesh,
)

Body = Mapping[str, Any]

PROXY_ANNOTATION = "meshwork.io/proxy"
PROXY_CONTAINER = "meshwork-proxy"
CAPTURE_CONTAINER = "meshwork-init"
INBOUND_PORT_ANNOTATION = "meshwork.io/inbound-port"
ADMIN_PORT_ANNOTATION = "meshwork.io/admin-port"
UPSTREAMS_ANNOTATION = "meshwork.io/upstreams"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
DEFAULT_INBOUND_PORT = 15006
DEFAULT_ADMIN_PORT = 15000

_APP_PROTOCOLS: dict[str, Protocol] = {
    "http": "http",
    "http2": "http2",
    "h2c": "http2",
    "kubernetes.io/h2c": "http2",
    "grpc": "http2",
    "tcp": "tcp",
    # TLS the sidecar cannot read: proxied as TCP
    "https": "tcp",
    "tls": "tcp",
}


@dataclass
class ClusterObjects:
    """The raw objects the adapter reads, keyed ``namespace/name`` (Nodes by name)."""

    services: dict[str, Body] = field(default_factory=dict)
    endpoint_slices: dict[str, Body] = field(default_factory=dict)
    pods: dict[str, Body] = field(default_factory=dict)
    nodes: dict[str, Body] = field(default_factory=dict)


@dataclass(frozen=True)
class AdaptProblem:
    """Something in a core object the mesh cannot use (reported, never raised)."""

    obj: str
    message: str

    def __str__(self) -> str:
        return f"{self.obj}: {self.message}"


def _meta(body: Body) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def key(body: Body) -> str:
    meta = _meta(body)
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def in_mesh(pod: Body) -> bool:
    meta = _meta(pod)
    if meta.get("deletionTimestamp"):
        return False
    if (meta.get("annotations") or {}).get(PROXY_ANNOTATION) == "injected":
        return True
    spec = pod.get("spec") or {}
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    return any(isinstance(c, Mapping) and c.get("name") == PROXY_CONTAINER for c in containers)


def transparent(pod: Body) -> bool:
    """Its traffic is captured: the injector added the capture init container."""
    spec = pod.get("spec") or {}
    inits = spec.get("initContainers") or []
    return any(isinstance(c, Mapping) and c.get("name") == CAPTURE_CONTAINER for c in inits)


def _cluster_ip(spec: Body) -> str | None:
    ip = spec.get("clusterIP")
    return str(ip) if ip and ip != "None" else None


def protocol_of(port: Body) -> Protocol:
    app = str(port.get("appProtocol") or "").lower()
    if app in _APP_PROTOCOLS:
        return _APP_PROTOCOLS[app]
    name = str(port.get("name") or "").lower()
    prefix = name.split("-", 1)[0]
    return _APP_PROTOCOLS.get(prefix, "http")


def _port_annotation(pod: Body, name: str, default: int, problems: list[AdaptProblem]) -> int:
    raw = (_meta(pod).get("annotations") or {}).get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= 65535:
        problems.append(AdaptProblem(f"Pod {key(pod)}", f"annotation {name}: {raw!r} is not a port; using {default}"))
        return default
    return value


def _upstreams(pod: Body, namespace: str, problems: list[AdaptProblem]) -> tuple[UpstreamInfo, ...]:
    raw = str((_meta(pod).get("annotations") or {}).get(UPSTREAMS_ANNOTATION) or "")
    out: list[UpstreamInfo] = []
    for item in filter(None, (s.strip() for s in raw.split(","))):
        target, _, port = item.rpartition(":")
        try:
            local = int(port)
        except ValueError:
            local = 0
        if not target or not 1 <= local <= 65535:
            problems.append(
                AdaptProblem(f"Pod {key(pod)}", f"annotation {UPSTREAMS_ANNOTATION}: {item!r} is not SERVICE:PORT")
            )
            continue
        name, _, ns = target.partition(".")
        out.append(UpstreamInfo(f"{ns or namespace}/{name}", local))
    return tuple(out)


def _pod_ip(pod: Body) -> str:
    status = pod.get("status") or {}
    return str(status.get("podIP") or "")


def _locality(pod: Body, endpoint_zone: str, nodes: Mapping[str, Body]) -> tuple[str, str]:
    node = nodes.get(str((pod.get("spec") or {}).get("nodeName") or ""), {})
    labels = _meta(node).get("labels") or {}
    return str(labels.get(REGION_LABEL, "")), endpoint_zone or str(labels.get(ZONE_LABEL, ""))


def _service_account(pod: Body) -> str:
    return str((pod.get("spec") or {}).get("serviceAccountName") or "default")


def _slices_by_service(slices: Iterable[Body]) -> dict[str, list[Body]]:
    out: dict[str, list[Body]] = {}
    for s in slices:
        meta = _meta(s)
        svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if svc:
            out.setdefault(f"{meta.get('namespace')}/{svc}", []).append(s)
    return out


def _ready(endpoint: Body) -> bool:
    conditions = endpoint.get("conditions") or {}
    return conditions.get("ready") is not False and not conditions.get("terminating")


def _app_port(slice_: Body, port_name: str) -> int | None:
    for p in slice_.get("ports") or []:
        if (p.get("name") or "") == port_name and p.get("port"):
            return int(p["port"])
    return None


def _service_port(
    svc: Body,
    port: Body,
    slices: list[Body],
    mesh_pods: Mapping[str, Body],
    captured: set[str],
    inbound_ports: Mapping[str, int],
    objects: ClusterObjects,
) -> tuple[ServiceInfo, list[tuple[str, int]]]:
    """One port of a Service as a :class:`ServiceInfo` view, and the (pod, app port) pairs that serve it."""
    namespace = str(_meta(svc).get("namespace"))
    instances: list[InstanceInfo] = []
    served: list[tuple[str, int]] = []
    seen: set[str] = set()
    for s in slices:
        app_port = _app_port(s, str(port.get("name") or ""))
        for ep in s.get("endpoints") or []:
            ref = ep.get("targetRef") or {}
            pod_key = f"{ref.get('namespace') or namespace}/{ref.get('name')}"
            pod = mesh_pods.get(pod_key) if ref.get("kind") == "Pod" else None
            if pod is None or not _ready(ep) or pod_key in seen or app_port is None:
                continue
            address = _pod_ip(pod)
            if not address:
                continue
            seen.add(pod_key)
            region, zone = _locality(pod, str(ep.get("zone") or ""), objects.nodes)
            instances.append(
                InstanceInfo(
                    workload=str(_meta(pod).get("name")),
                    namespace=namespace,
                    address=address,
                    # captured: peers dial the app's port, the pod's iptables hand it to the sidecar
                    port=app_port if pod_key in captured else inbound_ports[pod_key],
                    labels=tuple(sorted((_meta(pod).get("labels") or {}).items())),
                    region=region,
                    zone=zone,
                    service_account=_service_account(pod),
                )
            )
            served.append((pod_key, app_port))
    instances.sort(key=lambda i: i.workload)
    view = ServiceInfo(
        str(_meta(svc).get("name")),
        namespace,
        int(port.get("port") or 0),
        protocol_of(port),
        tuple(instances),
        _cluster_ip(svc.get("spec") or {}),
    )
    return view, served


def _serve(
    serves: dict[str, dict[int, str]], pod_key: str, svc_key: str, app_port: int, *, first_port: bool, captured: bool
) -> bool:
    """Record that a pod serves a Service's port. A captured pod's sidecar serves every app port (for the first
    Service, by name, that has it); an explicit-mode sidecar has one inbound port: the first port of the first
    Service. False: an explicit-mode pod that serves another Service already."""
    pod_ports = serves.setdefault(pod_key, {})
    if captured:
        pod_ports.setdefault(app_port, svc_key)
    elif not pod_ports and first_port:
        pod_ports[app_port] = svc_key
    elif first_port and svc_key not in pod_ports.values():
        return False
    return True


def adapt(
    objects: ClusterObjects, policies: Iterable[Policy], mesh: Mesh | None = None
) -> tuple[MeshState, list[AdaptProblem]]:
    """The MeshState of the cluster, and what could not be used (with the object it is about)."""
    problems: list[AdaptProblem] = []
    mesh_pods = {k: p for k, p in objects.pods.items() if in_mesh(p)}
    slices = _slices_by_service(objects.endpoint_slices[k] for k in sorted(objects.endpoint_slices))
    services: dict[str, ServiceInfo] = {}
    #: pod key -> app port -> the (first, by name) service it serves on that port
    serves: dict[str, dict[int, str]] = {}
    captured = {k for k, p in mesh_pods.items() if transparent(p)}
    inbound_ports = {
        k: _port_annotation(p, INBOUND_PORT_ANNOTATION, DEFAULT_INBOUND_PORT, problems) for k, p in mesh_pods.items()
    }
    for svc_key in sorted(objects.services):
        svc = objects.services[svc_key]
        spec = svc.get("spec") or {}
        # Envoy proxies TCP only: a UDP/SCTP port is not the mesh's (kube-dns serves 53 over UDP and TCP), and a
        # port number is one destination (the first port with it wins).
        ports, numbers = [], set()
        for port in spec.get("ports") or []:
            if str(port.get("protocol") or "TCP") == "TCP" and port.get("port") not in numbers:
                numbers.add(port.get("port"))
                ports.append(port)
        if not ports or spec.get("type") == "ExternalName":
            continue
        views = [
            _service_port(svc, port, slices.get(svc_key, []), mesh_pods, captured, inbound_ports, objects)
            for port in ports
        ]
        services[svc_key] = replace(views[0][0], other_ports=tuple(v for v, _ in views[1:]))
        for n, (_, served) in enumerate(views):
            for pod_key, app_port in served:
                if not _serve(serves, pod_key, svc_key, app_port, first_port=n == 0, captured=pod_key in captured):
                    first = next(iter(serves[pod_key].values()))
                    problems.append(AdaptProblem(f"Pod {pod_key}", f"serves {first} already; {svc_key} not inbound"))
    workloads: dict[str, WorkloadInfo] = {}
    for pod_key in sorted(mesh_pods):
        pod = mesh_pods[pod_key]
        address = _pod_ip(pod)
        if not address:
            continue  # not scheduled yet: no sidecar to serve
        namespace = str(_meta(pod).get("namespace"))
        region, zone = _locality(pod, "", objects.nodes)
        inbound: tuple[InboundInfo, ...] = ()
        if pod_key in serves:
            if pod_key in captured:
                inbound = tuple(
                    InboundInfo(svc_key, "0.0.0.0", app_port, "127.0.0.1", app_port)
                    for app_port, svc_key in sorted(serves[pod_key].items())
                )
            else:
                app_port, svc_key = next(iter(serves[pod_key].items()))
                inbound = (InboundInfo(svc_key, address, inbound_ports[pod_key], "127.0.0.1", app_port),)
        workloads[pod_key] = WorkloadInfo(
            namespace=namespace,
            name=str(_meta(pod).get("name")),
            service_account=_service_account(pod),
            region=region,
            zone=zone,
            inbound=inbound,
            upstreams=_upstreams(pod, namespace, problems),
            admin_port=_port_annotation(pod, ADMIN_PORT_ANNOTATION, DEFAULT_ADMIN_PORT, problems),
            transparent=pod_key in captured,
        )
    return MeshState(mesh or default_mesh(), services, workloads, tuple(policies)), problems
