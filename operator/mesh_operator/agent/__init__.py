"""The pod agent: runs in the sidecar container beside Envoy (as istio-agent, kuma-dp, consul-dataplane do).

It reads the pod's projected ServiceAccount token, sends a CSR to the control plane (which checks the token with
a TokenReview and the bound pod, see :mod:`mesh_operator.identity`), writes Envoy's xDS client certificate and
bootstrap, starts Envoy, renews the certificate before expiry without restarting Envoy (Envoy reloads it from a
watched directory), serves the health port (Envoy's readiness and the app's rewritten probes), and drains Envoy
on SIGTERM.

Cost per pod matters, so the long-running process uses the standard library only (~20 MB): the key and CSR are
made by a short-lived child process (``python -m mesh_operator.agent csr``, which loads ``cryptography``), and
gRPC probes load ``grpclib`` only in pods that have them. This package imports nothing heavy at import time.
"""
