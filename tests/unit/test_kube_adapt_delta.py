"""The store's O(changed) adapter gives what adapting every object afresh gives, over random sequences of the events
a cluster delivers to the real Store (pods created, deleted, becoming ready or not, getting an IP, their labels,
service account, node, sidecar mode and annotations changed; EndpointSlices created, edited, deleted and moved
between Services or losing their service label; Services' ports changed, Services created, deleted, made
ExternalName; Nodes' zones changed; a periodic resync's LIST; policies created, edited, deleted). After every
event the snapshot's services, workloads and problems equal ``adapt()`` of the same objects, what did not change
is the very same objects, and the incremental translation of the snapshot gives every proxy the bytes a full
translation of ``adapt()``'s state gives."""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh_operator.control.build import Incremental, build
from mesh_operator.kube.adapter import ClusterObjects, adapt
from mesh_operator.kube.store import CORE_KINDS, Store
from tests.unit.test_kube_store import tp
from xds_server.layered import changed_since
from xds_server.snapshot import ENDPOINT, Snapshot

NS = "shop"
PODS = [f"p{i}" for i in range(6)]
SERVICES = ["backend", "front", "db", "cache"]
SLICES = [f"sl{i}" for i in range(5)]
NODES = ["n0", "n1"]
PORT_NAMES = ["http", "grpc", "tcp-db"]


class _Cluster:
    """The objects as the API server holds them (each write a new resourceVersion), written to a Store."""

    def __init__(self, store: Store, rng: random.Random) -> None:
        self.store = store
        self.rng = rng
        self.version = 0
        self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in CORE_KINDS}

    def _meta(self, name: str, **extra: Any) -> dict[str, Any]:
        self.version += 1
        return {"name": name, "namespace": NS, "resourceVersion": str(self.version), **extra}

    def write(self, kind: str, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        key = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
        self.objects[kind][key] = body
        self.store.upsert(kind, body)

    def remove(self, kind: str) -> None:
        if self.objects[kind]:
            key = self.rng.choice(sorted(self.objects[kind]))
            self.store.delete(kind, self.objects[kind].pop(key))

    def pod(self) -> dict[str, Any]:
        r = self.rng
        annotations: dict[str, str] = {}
        if r.random() < 0.9:
            annotations["meshwork.io/proxy"] = "injected"
        if r.random() < 0.3:
            annotations["meshwork.io/inbound-port"] = r.choice(["16001", "16002", "junk"])
        if r.random() < 0.3:
            annotations["meshwork.io/upstreams"] = r.choice(["backend:15101", "db.shop:15102, junk", "front:15103"])
        if r.random() < 0.1:
            annotations["meshwork.io/admin-port"] = r.choice(["15001", "0"])
        extra: dict[str, Any] = {"labels": {"version": r.choice(["v1", "v2"])}, "annotations": annotations}
        if r.random() < 0.1:
            extra["deletionTimestamp"] = "2026-12-01T00:00:00Z"
        spec: dict[str, Any] = {"serviceAccountName": r.choice(["a", "b", None]), "containers": [{"name": "app"}]}
        if r.random() < 0.8:
            spec["nodeName"] = r.choice(NODES)
        if r.random() < 0.25:  # transparent: the injector's capture init container
            spec["initContainers"] = [{"name": "meshwork-init"}]
        name = r.choice(PODS)
        ip = r.choice(["", *[f"10.0.{n}.{PODS.index(name) + 1}" for n in range(4)]])
        return {"metadata": self._meta(name, **extra), "spec": spec, "status": {"podIP": ip} if ip else {}}

    def endpoint_slice(self) -> dict[str, Any]:
        r = self.rng
        endpoints = []
        for p in r.sample(PODS, r.randint(0, 5)):
            ep: dict[str, Any] = {
                "addresses": ["192.0.2.1"],
                "conditions": {"ready": r.random() < 0.85, "terminating": r.random() < 0.05},
                "targetRef": {"kind": r.choice(["Pod", "Pod", "Pod", "Node"]), "name": p, "namespace": NS},
            }
            if r.random() < 0.3:
                ep["zone"] = r.choice(["z1", "z2"])
            endpoints.append(ep)
        labels = {"kubernetes.io/service-name": r.choice(SERVICES)} if r.random() < 0.9 else {}
        ports = [{"name": n, "port": 8080 + i, "protocol": "TCP"} for i, n in enumerate(PORT_NAMES) if r.random() < 0.8]
        return {
            "metadata": self._meta(r.choice(SLICES), labels=labels),
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": ports,
        }

    def service(self) -> dict[str, Any]:
        r = self.rng
        ports = [
            {"name": n, "port": r.choice([80, 81, 82]), "protocol": r.choice(["TCP", "TCP", "TCP", "UDP"])}
            for n in r.sample(PORT_NAMES, r.choice([0, 1, 1, 2, 2, 3]))
        ]
        spec: dict[str, Any] = {"ports": ports, "clusterIP": r.choice(["10.96.0.1", "10.96.0.2", "None"])}
        if r.random() < 0.1:
            spec["type"] = "ExternalName"
        return {"metadata": self._meta(r.choice(SERVICES)), "spec": spec}

    def node(self) -> dict[str, Any]:
        r = self.rng
        labels = {"topology.kubernetes.io/zone": r.choice(["z1", "z2", "z3"])}
        if r.random() < 0.5:
            labels["topology.kubernetes.io/region"] = r.choice(["r1", "r2"])
        self.version += 1
        return {"metadata": {"name": r.choice(NODES), "labels": labels, "resourceVersion": str(self.version)}}

    def resync(self) -> None:
        """A periodic LIST of one kind: some objects changed or gone behind the watch's back."""
        r = self.rng
        kind = r.choice(list(CORE_KINDS))
        listed = {k: b for k, b in self.objects[kind].items() if r.random() < 0.8}
        for k in list(listed):
            if r.random() < 0.3:
                body = copy.deepcopy(listed[k])
                self.version += 1
                body["metadata"]["resourceVersion"] = str(self.version)
                body["metadata"].setdefault("labels", {})["resynced"] = str(self.version)
                listed[k] = body
        self.objects[kind] = listed
        self.store.reconcile(kind, list(listed.values()), self.version)

    def event(self) -> None:
        r = self.rng
        step = r.randrange(11)
        if step == 10:  # a policy created, edited or deleted (inserted or removed in place in the policy tuple)
            name = r.choice(["t0", "t1", "t2"])
            if r.random() < 0.4:
                self.store.delete("TrafficPolicy", tp(name))
            else:
                self.version += 1
                spec = {"targetRef": {"name": r.choice(SERVICES)}, "timeouts": {"request": f"{self.version}s"}}
                body = tp(name, generation=self.version)
                self.store.upsert("TrafficPolicy", {**body, "spec": spec})
            return
        if step <= 2:
            self.write("Pod", self.pod())
        elif step == 3:
            self.remove(r.choice(["Pod", "EndpointSlice", "Service", "Node"]))
        elif step <= 5:
            self.write("EndpointSlice", self.endpoint_slice())
        elif step == 6:
            self.write("Service", self.service())
        elif step == 7:
            self.write("Node", self.node())
        elif step == 8:
            self.resync()
        else:  # a pod's readiness flips in its slice (the commonest event)
            slices = [b for b in self.objects["EndpointSlice"].values() if b["endpoints"]]
            if slices:
                body = copy.deepcopy(r.choice(slices))
                ep = r.choice(body["endpoints"])
                ep["conditions"]["ready"] = not ep["conditions"]["ready"]
                self.version += 1
                body["metadata"]["resourceVersion"] = str(self.version)
                self.write("EndpointSlice", body)


def _bytes(snapshots: Any) -> dict[str, dict[str, dict[str, bytes]]]:
    def of(s: Snapshot) -> dict[str, dict[str, bytes]]:
        return {t: {n: r.body for n, r in by.items()} for t, by in s.resources.items()}

    return {node: of(s) for node, s in snapshots.items()}


def _run(seed: int, events: int) -> None:
    rng = random.Random(seed)
    store = Store()
    cluster = _Cluster(store, rng)
    store.upsert("TrafficPolicy", tp("backend-timeouts", timeouts={"request": "2s"}))
    for _ in range(4):  # a cluster to start from, adapted whole by the first snapshot
        for kind, make in (("Service", cluster.service), ("EndpointSlice", cluster.endpoint_slice)):
            cluster.write(kind, make())
        cluster.write("Pod", cluster.pod())
    for _ in NODES:
        cluster.write("Node", cluster.node())
    store.mark_synced()
    inc = Incremental()
    previous = None
    for step in range(events):
        cluster.event()
        snap = store.snapshot()
        objects = ClusterObjects(**{f: dict(cluster.objects[kind]) for kind, f in CORE_KINDS.items()})
        fresh, problems = adapt(objects, snap.state.policies, snap.state.mesh)
        assert dict(snap.state.services) == fresh.services
        assert dict(snap.state.workloads) == fresh.workloads
        assert snap.problems == problems
        if previous is not None:  # what did not change is the very same object
            for old, new in ((previous.services, snap.state.services), (previous.workloads, snap.state.workloads)):
                assert all(new[k] is v for k, v in old.items() if k in new and new[k] == v)
        previous = snap.state
        incremental = build(snap.state, {}, {}, None, inc)
        assert inc.translator.last_path == ("full" if step == 0 else "incremental")
        full = build(fresh, {}, {}, None)
        assert _bytes(incremental.snapshots) == _bytes(full.snapshots)
        assert incremental.failed == full.failed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_every_snapshot_after_random_cluster_events_equals_a_fresh_adapt_and_translates_to_the_same_bytes(
    seed: int,
) -> None:
    _run(seed, 40)


def test_a_long_run_of_random_events_keeps_the_delta_equal_to_a_fresh_adapt() -> None:
    _run(14, 400)


def test_a_readiness_flip_hands_over_only_that_service_and_pod_and_a_caller_gets_only_new_endpoints() -> None:
    from tests.unit.test_kube_adapter import pod, service, slice_

    store = Store()
    for name in ("backend", "front"):
        store.upsert("Service", service(name))
        store.upsert("EndpointSlice", slice_(name, [f"{name}-1", f"{name}-2"]))
        store.upsert("Pod", pod(f"{name}-1", "127.0.0.1" if name == "backend" else "127.0.0.3"))
        store.upsert("Pod", pod(f"{name}-2", "127.0.0.2" if name == "backend" else "127.0.0.4"))
    store.upsert("Pod", pod("caller", "127.0.0.9", annotations={"meshwork.io/upstreams": "backend:15101"}))
    store.mark_synced()
    inc = Incremental()
    first = store.snapshot().state
    before = build(first, {}, {}, None, inc).snapshots["shop/caller"]
    flipped = slice_("backend", ["backend-1", "backend-2"])
    flipped["endpoints"][1]["conditions"]["ready"] = False
    store.upsert("EndpointSlice", flipped)
    second = store.snapshot().state
    assert set(changed_since(first.services, second.services) or ()) == {"shop/backend"}
    assert second.services["shop/front"] is first.services["shop/front"]
    # the pod no longer serves (adapt() gives an unready pod no inbound): only its workload changes
    assert set(changed_since(first.workloads, second.workloads) or ()) == {"shop/backend-2"}
    after = build(second, {}, {}, None, inc).snapshots["shop/caller"]
    assert [i.workload for i in second.services["shop/backend"].instances] == ["backend-1"]
    assert {t for t in after.resources if after.type_version(t) != before.type_version(t)} == {ENDPOINT}
