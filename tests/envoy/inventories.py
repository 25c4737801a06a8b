"""Inventories shared by the Envoy-tier tests that only need a mesh to hang one policy on."""

from __future__ import annotations

from mesh_operator.api import TrafficPolicy
from mesh_operator.translate.state import MeshState, ServiceInfo, UpstreamInfo, WorkloadInfo, default_mesh

#: One Service `backend` with one instance and one client `caller` that calls it: the smallest mesh a TrafficPolicy,
#: RetryPolicy or AccessPolicy on `backend` turns into a listener, a route and a cluster Envoy has to accept.
ONE_BACKEND = """
apiVersion: meshwork.io/v1alpha1
kind: Inventory
metadata: {name: local}
spec:
  services:
    - name: backend
      ports: [{port: 8080}]
      instances:
        - {name: backend-1, address: 127.0.0.1, port: 9001, labels: {version: v1}, sidecar: {inboundPort: 15001}}
  clients:
    - name: caller
      sidecar: {upstreams: [{service: backend, localPort: 18080}]}
"""


def fan_out(services: int, bad: frozenset[int] = frozenset()) -> MeshState:
    """bench/apply.py's mesh: one client proxy `b/client` calling ``services`` Services `svc-<i>` (its outbound
    listener `outbound|<20000+i>|svc-<i>.b` with route configuration of that name and cluster `svc-<i>.b|80`),
    each with a TrafficPolicy `tp-<i>`; the policies in ``bad`` set a connect timeout of 0 s, which Envoy refuses
    (our own validation refuses it first unless switched off)."""
    names = [f"svc-{i}" for i in range(services)]
    svc = {f"b/{n}": ServiceInfo(n, "b", 80, "http", ()) for n in names}
    ups = tuple(UpstreamInfo(f"b/{n}", 20000 + i) for i, n in enumerate(names))
    client = {"b/client": WorkloadInfo("b", "client", "default", upstreams=ups)}
    policies = tuple(
        TrafficPolicy.model_validate(
            {
                "apiVersion": "meshwork.io/v1alpha1",
                "kind": "TrafficPolicy",
                "metadata": {"name": f"tp-{i}", "namespace": "b", "generation": 1},
                "spec": {
                    "targetRef": {"name": n},
                    "timeouts": {"request": f"{1 + i % 9}s", **({"connect": "0s"} if i in bad else {})},
                },
            }
        )
        for i, n in enumerate(names)
    )
    return MeshState(default_mesh(), svc, client, policies)
