"""The Kubernetes source of the control plane: kopf watches -> store -> MeshState; status, admission, leader Lease.

Modules: ``adapter`` (Service + EndpointSlice + Pod + Node -> MeshState, pure), ``store`` (the watched objects),
``handlers`` (thin kopf handlers feeding the store), ``status`` (conditions and delivery receipts, pure),
``writer`` (idempotent, coalesced, rate-bounded status writes), ``admission`` (the TLS webhook server, ``/validate``),
``lease`` (coordination.k8s.io/v1 leader election), ``peers`` (replicas share their ACK tables), ``rest`` (a small
async Kubernetes REST client), ``operator`` (the process: kopf in its own thread, the control plane in the main loop).
"""
