"""Services + EndpointSlices + Pods + Nodes -> MeshState: the one place Kubernetes objects are adapted."""

from __future__ import annotations

from typing import Any

from mesh_operator.kube.adapter import ClusterObjects, adapt


def pod(
    name: str,
    ip: str = "127.0.0.1",
    *,
    ns: str = "shop",
    sa: str = "backend",
    node: str = "n1",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    sidecar: bool = True,
) -> dict[str, Any]:
    ann = {"meshwork.io/inbound-port": "16001", **(annotations or {})}
    if sidecar:
        ann["meshwork.io/proxy"] = "injected"
    return {
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}, "annotations": ann},
        "spec": {"serviceAccountName": sa, "nodeName": node, "containers": [{"name": "app"}]},
        "status": {"podIP": ip},
    }


def service(
    name: str, *, ns: str = "shop", port: int = 80, port_name: str = "http", app_protocol: str | None = None
) -> dict[str, Any]:
    p: dict[str, Any] = {"name": port_name, "port": port, "targetPort": 8080}
    if app_protocol:
        p["appProtocol"] = app_protocol
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"ports": [p]}}


def slice_(
    svc: str, pods: list[str], *, ns: str = "shop", ready: bool = True, zone: str = "", port_name: str = "http"
) -> dict[str, Any]:
    endpoints = []
    for i, p in enumerate(pods):
        ep: dict[str, Any] = {
            "addresses": [f"192.0.2.{i + 1}"],  # never used: the instance address is the pod's IP
            "conditions": {"ready": ready},
            "targetRef": {"kind": "Pod", "name": p, "namespace": ns},
        }
        if zone:
            ep["zone"] = zone
        endpoints.append(ep)
    return {
        "metadata": {"name": f"{svc}-abc", "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": port_name, "port": 8080, "protocol": "TCP"}],
    }


def objects(**kinds: list[dict[str, Any]]) -> ClusterObjects:
    def keyed(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}".lstrip("/"): o for o in items}

    return ClusterObjects(**{k: keyed(v) for k, v in kinds.items()})


def test_a_service_instance_is_a_ready_mesh_pod_of_its_endpointslice_at_the_pods_ip() -> None:
    cluster = objects(
        services=[service("backend")],
        endpoint_slices=[slice_("backend", ["backend-1"])],
        pods=[pod("backend-1", "127.0.0.7", labels={"version": "v1"})],
    )
    state, problems = adapt(cluster, [])
    svc = state.services["shop/backend"]
    assert (svc.port, svc.protocol) == (80, "http")
    [inst] = svc.instances
    assert (inst.workload, inst.address, inst.port, inst.service_account) == (
        "backend-1",
        "127.0.0.7",
        16001,
        "backend",
    )
    assert inst.labels == (("version", "v1"),)
    w = state.workloads["shop/backend-1"]
    assert [(i.service, i.listen_address, i.listen_port, i.app_port) for i in w.inbound] == [
        ("shop/backend", "127.0.0.7", 16001, 8080)
    ]
    assert problems == []


def test_endpoints_not_ready_or_without_a_sidecar_are_not_routed_to() -> None:
    cluster = objects(
        services=[service("backend")],
        endpoint_slices=[slice_("backend", ["plain", "meshed"])],
        pods=[pod("plain", sidecar=False), pod("meshed")],
    )
    state, _ = adapt(cluster, [])
    assert [i.workload for i in state.services["shop/backend"].instances] == ["meshed"]
    cluster.endpoint_slices["shop/backend-abc"] = slice_("backend", ["meshed"], ready=False)
    state, _ = adapt(cluster, [])
    assert state.services["shop/backend"].instances == ()


def test_locality_comes_from_the_endpoint_zone_and_the_nodes_region_label() -> None:
    node = {
        "metadata": {
            "name": "n1",
            "labels": {"topology.kubernetes.io/region": "eu", "topology.kubernetes.io/zone": "eu-b"},
        }
    }
    cluster = objects(
        services=[service("backend")],
        endpoint_slices=[slice_("backend", ["b1"], zone="eu-a")],
        pods=[pod("b1")],
        nodes=[node],
    )
    state, _ = adapt(cluster, [])
    [inst] = state.services["shop/backend"].instances
    assert (inst.region, inst.zone) == ("eu", "eu-a")
    assert (state.workloads["shop/b1"].region, state.workloads["shop/b1"].zone) == ("eu", "eu-b")


def test_protocols_come_from_app_protocol_or_the_port_name() -> None:
    cluster = objects(
        services=[
            service("a", app_protocol="kubernetes.io/h2c"),
            service("b", port_name="tcp-db"),
            service("c", port_name="grpc-api"),
            service("d", port_name="web"),
        ]
    )
    state, _ = adapt(cluster, [])
    assert {k: s.protocol for k, s in state.services.items()} == {
        "shop/a": "http2",
        "shop/b": "tcp",
        "shop/c": "http2",
        "shop/d": "http",
    }


def test_upstream_annotations_become_local_ports_and_bad_ones_are_reported() -> None:
    client = pod(
        "caller",
        annotations={
            "meshwork.io/upstreams": "backend:15101, reviews.other:15102, junk, x:99999",
            "meshwork.io/admin-port": "notaport",
        },
    )
    state, problems = adapt(objects(pods=[client]), [])
    w = state.workloads["shop/caller"]
    assert [(u.service, u.local_port) for u in w.upstreams] == [("shop/backend", 15101), ("other/reviews", 15102)]
    assert w.admin_port == 15000
    assert w.inbound == ()
    text = "\n".join(map(str, problems))
    assert "'junk' is not SERVICE:PORT" in text and "'x:99999'" in text and "meshwork.io/admin-port" in text


def test_a_pod_without_an_ip_or_being_deleted_is_not_a_proxy() -> None:
    pending = pod("pending", ip="")
    leaving = pod("leaving")
    leaving["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    state, _ = adapt(objects(pods=[pending, leaving, pod("ok")]), [])
    assert sorted(state.workloads) == ["shop/ok"]


def test_an_explicit_pod_serving_only_a_services_second_port_is_an_instance_without_an_inbound_listener() -> None:
    svc = service("backend")
    svc["spec"]["ports"].append({"name": "grpc", "port": 81, "targetPort": 9090})
    only_grpc = slice_("backend", ["backend-1"], port_name="grpc")
    state, problems = adapt(objects(services=[svc], endpoint_slices=[only_grpc], pods=[pod("backend-1")]), [])
    backend = state.services["shop/backend"]
    assert backend.instances == () and [i.workload for i in backend.other_ports[0].instances] == ["backend-1"]
    assert state.workloads["shop/backend-1"].inbound == () and problems == []
