"""Services with several ports: every port is routed (its own destination listener, cluster and routes), a captured
pod's sidecar serves every app port, and Gateway API routes attach to the ports their parentRefs name."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mesh_operator.api.gateway import HTTPRoute
from mesh_operator.kube.adapter import ClusterObjects, adapt
from mesh_operator.translate import translate_mesh
from xds_server import ir

PORTS = [
    {"name": "http", "port": 80, "appProtocol": "http", "targetPort": 8080},
    {"name": "http-alt", "port": 8080, "appProtocol": "http"},
    {"name": "https", "port": 443, "targetPort": 8443},
    {"name": "tcp", "port": 9090},
    {"name": "grpc", "port": 7070, "appProtocol": "grpc"},
]
APP_PORTS = {"http": 8080, "http-alt": 8080, "https": 8443, "tcp": 9090, "grpc": 7070}


def captured_pod(name: str, ip: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "m",
            "labels": {"app": name},
            "annotations": {"meshwork.io/proxy": "injected"},
        },
        "spec": {"serviceAccountName": name, "initContainers": [{"name": "meshwork-init"}], "containers": [{}]},
        "status": {"podIP": ip},
    }


def service(name: str, cluster_ip: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "m"}, "spec": {"clusterIP": cluster_ip, "ports": PORTS}}


def slice_(svc: str, pod: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{svc}-1", "namespace": "m", "labels": {"kubernetes.io/service-name": svc}},
        "endpoints": [{"conditions": {"ready": True}, "targetRef": {"kind": "Pod", "name": pod, "namespace": "m"}}],
        "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in APP_PORTS.items()],
    }


def cluster() -> ClusterObjects:
    objs = {
        "services": [service("echo", "10.96.0.20"), service("other", "10.96.0.21")],
        "endpoint_slices": [slice_("echo", "echo-1"), slice_("other", "other-1")],
        "pods": [captured_pod("echo-1", "10.244.0.5"), captured_pod("other-1", "10.244.0.6")],
    }
    return ClusterObjects(**{k: {f"m/{o['metadata']['name']}": o for o in v} for k, v in objs.items()})


def route_on_port(port: int | None, backend_port: int = 8080) -> HTTPRoute:
    parent: dict[str, Any] = {"group": "", "kind": "Service", "name": "echo"}
    if port is not None:
        parent["port"] = port
    return HTTPRoute.model_validate(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "to-other", "namespace": "m"},
            "spec": {"parentRefs": [parent], "rules": [{"backendRefs": [{"name": "other", "port": backend_port}]}]},
        }
    )


def destinations(proxy: ir.ProxyConfig) -> dict[str, ir.OutboundListener]:
    assert proxy.transparent is not None
    return {f"{d.address}:{d.port}": d for d in proxy.transparent.destinations}


def test_every_port_of_a_service_is_modelled_with_its_own_protocol_and_app_port() -> None:
    state, problems = adapt(cluster(), [])
    assert problems == []
    svc = state.services["m/echo"]
    views = [(v.port, v.protocol, [i.port for i in v.instances]) for v in svc.port_views()]
    assert views == [
        (80, "http", [8080]),
        (8080, "http", [8080]),
        (443, "tcp", [8443]),
        (9090, "tcp", [9090]),
        (7070, "http2", [7070]),
    ]
    served = [(i.listen_port, i.service) for i in state.workloads["m/echo-1"].inbound]
    assert served == [(7070, "m/echo"), (8080, "m/echo"), (8443, "m/echo"), (9090, "m/echo")]


def test_a_captured_caller_reaches_every_port_of_a_service_through_its_own_cluster() -> None:
    state, _ = adapt(cluster(), [])
    proxy = translate_mesh(state).proxies["m/other-1"]
    dest = destinations(proxy)
    echo = {k: v for k, v in dest.items() if k.startswith("10.96.0.20:")}
    assert sorted(echo) == [f"10.96.0.20:{p}" for p in (443, 7070, 80, 8080, 9090)]
    assert echo["10.96.0.20:9090"].protocol == "tcp"
    assert echo["10.96.0.20:9090"].tcp_cluster == "echo.m|9090"
    assert echo["10.96.0.20:7070"].routes[-1].clusters[0].cluster == "echo.m|7070"
    clusters = {c.name: c for c in proxy.clusters}
    assert [(e.address, e.port) for e in clusters["echo.m|80"].endpoints] == [("10.244.0.5", 8080)]
    assert clusters["echo.m|7070"].protocol == "http2"
    inbound = {i.port: i.protocol for i in translate_mesh(state).proxies["m/echo-1"].transparent.inbound}  # type: ignore[union-attr]
    assert inbound == {7070: "http", 8080: "http", 8443: "tcp", 9090: "tcp"}


def test_a_route_with_a_parent_port_applies_to_that_port_only_and_a_route_without_one_to_every_http_port() -> None:
    state, _ = adapt(cluster(), [])
    on_8080 = translate_mesh(replace(state, routes=(route_on_port(8080),))).proxies["m/other-1"]
    dest = destinations(on_8080)
    assert dest["10.96.0.20:8080"].routes[0].clusters[0].cluster == "other.m|8080"
    assert dest["10.96.0.20:80"].routes[-1].clusters[0].cluster == "echo.m|80"
    everywhere = destinations(translate_mesh(replace(state, routes=(route_on_port(None),))).proxies["m/other-1"])
    for port in (80, 8080, 7070):
        assert everywhere[f"10.96.0.20:{port}"].routes[0].clusters[0].cluster == "other.m|8080", port


def test_a_parent_or_backend_port_the_service_does_not_have_is_named_in_the_status() -> None:
    state, _ = adapt(cluster(), [])
    bad_parent = translate_mesh(replace(state, routes=(route_on_port(81),))).routes
    [outcome] = bad_parent.values()
    [parent] = outcome.parents
    assert (parent.accepted, parent.accepted_reason) == (False, "NoMatchingParent")
    assert [v.path for v in parent.violations] == ["spec.parentRefs[0].port"]
    [outcome] = translate_mesh(replace(state, routes=(route_on_port(8080, backend_port=81),))).routes.values()
    [parent] = outcome.parents
    assert (parent.resolved, parent.resolved_reason) == (False, "BackendNotFound")
    assert [v.path for v in parent.ref_problems] == ["spec.rules[0].backendRefs[0].port"]


def test_udp_ports_are_not_the_meshs_and_a_port_number_is_one_destination() -> None:
    objs = cluster()
    dns = {
        "metadata": {"name": "kube-dns", "namespace": "m"},
        "spec": {
            "clusterIP": "10.96.0.10",
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                {"name": "metrics", "port": 9153, "protocol": "TCP"},
            ],
        },
    }
    objs.services["m/kube-dns"] = dns
    state, _ = adapt(objs, [])
    assert [v.port for v in state.services["m/kube-dns"].port_views()] == [53, 9153]
    proxy = translate_mesh(state).proxies["m/other-1"]
    assert proxy.transparent is not None
    for by_port in proxy.transparent.by_port:
        domains = [d for h in by_port.hosts for d in h.domains]
        assert len(domains) == len(set(domains)), by_port.port


def test_a_request_to_a_mesh_pods_own_address_goes_to_that_pod_over_mtls_without_any_services_routes() -> None:
    state, _ = adapt(cluster(), [])
    state = replace(state, routes=(route_on_port(None),))  # echo's route sends everything to other
    proxy = translate_mesh(state).proxies["m/other-1"]
    assert proxy.transparent is not None
    [on_8080] = [p for p in proxy.transparent.by_port if p.port == 8080]
    [pod] = [h for h in on_8080.hosts if h.domains == ("10.244.0.5",)]
    [route] = pod.routes
    assert route.clusters[0].cluster == "endpoint|10.244.0.5:8080"
    target = {c.name: c for c in proxy.clusters}["endpoint|10.244.0.5:8080"]
    assert [(e.address, e.port) for e in target.endpoints] == [("10.244.0.5", 8080)]
    assert target.tls is not None and target.tls.peer_spiffe_ids == ("spiffe://cluster.local/ns/m/sa/echo-1",)
