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


def slice_service(slice_: Body) -> str | None:
    """The key of the Service an EndpointSlice belongs to (its ``kubernetes.io/service-name`` label), if any."""
    meta = _meta(slice_)
    svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{meta.get('namespace')}/{svc}" if svc else None


def slice_pods(slice_: Body) -> frozenset[str]:
    """The keys of the Pods an EndpointSlice's endpoints refer to (ready or not)."""
    namespace = _meta(slice_).get("namespace")
    refs = ((ep.get("targetRef") or {}) for ep in slice_.get("endpoints") or [])
    return frozenset(f"{r.get('namespace') or namespace}/{r.get('name')}" for r in refs if r.get("kind") == "Pod")


def _slices_by_service(slices: Iterable[Body]) -> dict[str, list[Body]]:
    out: dict[str, list[Body]] = {}
    for s in slices:
        svc = slice_service(s)
        if svc:
            out.setdefault(svc, []).append(s)
    return out


def _ready(endpoint: Body) -> bool:
    conditions = endpoint.get("conditions") or {}
    return conditions.get("ready") is not False and not conditions.get("terminating")


def _app_port(slice_: Body, port_name: str) -> int | None:
    for p in slice_.get("ports") or []:
        if (p.get("name") or "") == port_name and p.get("port"):
            return int(p["port"])
    return None


@dataclass(frozen=True)
class MeshPod:
    """A Pod in the mesh, as the adapter reads it (parsed once per version of the Pod)."""

    key: str
    body: Body
    #: transparent: its traffic is captured
    captured: bool
    #: where peers reach its sidecar (explicit mode)
    inbound_port: int
    #: what is wrong with its inbound-port annotation
    problems: tuple[AdaptProblem, ...]


def mesh_pod(pod_key: str, pod: Body) -> MeshPod | None:
    """The Pod as the mesh sees it, None when it is not in the mesh."""
    if not in_mesh(pod):
        return None
    problems: list[AdaptProblem] = []
    inbound_port = _port_annotation(pod, INBOUND_PORT_ANNOTATION, DEFAULT_INBOUND_PORT, problems)
    return MeshPod(pod_key, pod, transparent(pod), inbound_port, tuple(problems))


def mesh_ports(svc: Body) -> list[Body]:
    """The ports of a Service the mesh proxies (none for an ExternalName Service). Envoy proxies TCP only: a
    UDP/SCTP port is not the mesh's (kube-dns serves 53 over UDP and TCP), and a port number is one destination
    (the first port with it wins)."""
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return []
    ports, numbers = [], set()
    for port in spec.get("ports") or []:
        if str(port.get("protocol") or "TCP") == "TCP" and port.get("port") not in numbers:
            numbers.add(port.get("port"))
            ports.append(port)
    return ports


def _service_port(
    svc: Body, port: Body, slices: list[Body], pods: Mapping[str, MeshPod], nodes: Mapping[str, Body]
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
            mp = pods.get(pod_key) if ref.get("kind") == "Pod" else None
            if mp is None or not _ready(ep) or pod_key in seen or app_port is None:
                continue
            pod = mp.body
            address = _pod_ip(pod)
            if not address:
                continue
            seen.add(pod_key)
            region, zone = _locality(pod, str(ep.get("zone") or ""), nodes)
            instances.append(
                InstanceInfo(
                    workload=str(_meta(pod).get("name")),
                    namespace=namespace,
                    address=address,
                    # captured: peers dial the app's port, the pod's iptables hand it to the sidecar
                    port=app_port if mp.captured else mp.inbound_port,
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


#: (port index, pod key, app port): a pod serving one port of a Service
Served = tuple[int, str, int]


def adapt_service(
    svc: Body, slices: list[Body], pods: Mapping[str, MeshPod], nodes: Mapping[str, Body]
) -> tuple[ServiceInfo, tuple[Served, ...]] | None:
    """A Service (``slices``: its EndpointSlices, by key) as a mesh service, and the pods that serve its ports,
    port by port; None when it is not the mesh's (no TCP port, ExternalName)."""
    ports = mesh_ports(svc)
    if not ports:
        return None
    views = [_service_port(svc, port, slices, pods, nodes) for port in ports]
    served = tuple((n, pod_key, app_port) for n, (_, pairs) in enumerate(views) for pod_key, app_port in pairs)
    return replace(views[0][0], other_ports=tuple(v for v, _ in views[1:])), served


def _serves(mp: MeshPod, serving: Iterable[tuple[str, int, int]]) -> tuple[dict[int, str], list[AdaptProblem]]:
    """App port -> the Service the pod's sidecar serves on it, from the (service, port index, app port) it
    serves, by service key. A captured pod's sidecar serves every app port (for the first Service, by name, that
    has it); an explicit-mode sidecar has one inbound port: the first port of the first Service (a problem for
    each other Service whose first port it serves)."""
    ports: dict[int, str] = {}
    problems: list[AdaptProblem] = []
    for svc_key, n, app_port in serving:
        if mp.captured:
            ports.setdefault(app_port, svc_key)
        elif n == 0 and not ports:
            ports[app_port] = svc_key
        elif n == 0 and svc_key not in ports.values():
            first = next(iter(ports.values()))
            problems.append(AdaptProblem(f"Pod {mp.key}", f"serves {first} already; {svc_key} not inbound"))
    return ports, problems


def adapt_workload(
    mp: MeshPod, serving: Iterable[tuple[str, int, int]], nodes: Mapping[str, Body]
) -> tuple[WorkloadInfo | None, list[AdaptProblem]]:
    """A mesh pod as a proxy (``serving``: see :func:`_serves`), None when it has no IP yet, and what is wrong
    with it."""
    ports, serve_problems = _serves(mp, serving)
    problems = [*mp.problems, *serve_problems]
    pod = mp.body
    address = _pod_ip(pod)
    if not address:
        return None, problems  # not scheduled yet: no sidecar to serve
    namespace = str(_meta(pod).get("namespace"))
    region, zone = _locality(pod, "", nodes)
    inbound: tuple[InboundInfo, ...] = ()
    if mp.captured:
        inbound = tuple(
            InboundInfo(svc_key, "0.0.0.0", app_port, "127.0.0.1", app_port)
            for app_port, svc_key in sorted(ports.items())
        )
    elif ports:
        app_port, svc_key = next(iter(ports.items()))
        inbound = (InboundInfo(svc_key, address, mp.inbound_port, "127.0.0.1", app_port),)
    workload = WorkloadInfo(
        namespace=namespace,
        name=str(_meta(pod).get("name")),
        service_account=_service_account(pod),
        region=region,
        zone=zone,
        inbound=inbound,
        upstreams=_upstreams(pod, namespace, problems),
        admin_port=_port_annotation(pod, ADMIN_PORT_ANNOTATION, DEFAULT_ADMIN_PORT, problems),
        transparent=mp.captured,
    )
    return workload, problems


def adapt(
    objects: ClusterObjects, policies: Iterable[Policy], mesh: Mesh | None = None
) -> tuple[MeshState, list[AdaptProblem]]:
    """The MeshState of the cluster, and what could not be used (with the object it is about; by Pod key).
    The reference: :mod:`mesh_operator.kube.adapt_delta` re-derives only what a change affects, to the same."""
    pods = {k: mp for k, p in objects.pods.items() if (mp := mesh_pod(k, p)) is not None}
    slices = _slices_by_service(objects.endpoint_slices[k] for k in sorted(objects.endpoint_slices))
    services: dict[str, ServiceInfo] = {}
    #: pod key -> (service, port index, app port) it serves, by service key
    serving: dict[str, list[tuple[str, int, int]]] = {}
    for svc_key in sorted(objects.services):
        adapted = adapt_service(objects.services[svc_key], slices.get(svc_key, []), pods, objects.nodes)
        if adapted is None:
            continue
        services[svc_key], served = adapted
        for n, pod_key, app_port in served:
            serving.setdefault(pod_key, []).append((svc_key, n, app_port))
    workloads: dict[str, WorkloadInfo] = {}
    problems: list[AdaptProblem] = []
    for pod_key in sorted(pods):
        workload, found = adapt_workload(pods[pod_key], serving.get(pod_key, ()), objects.nodes)
        problems += found
        if workload is not None:
            workloads[pod_key] = workload
    return MeshState(mesh or default_mesh(), services, workloads, tuple(policies)), problems
