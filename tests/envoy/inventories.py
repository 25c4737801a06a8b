"""Inventories shared by the Envoy-tier tests that only need a mesh to hang one policy on."""

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
