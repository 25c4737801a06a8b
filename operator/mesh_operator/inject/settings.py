"""What the injector puts into a pod when no annotation says otherwise (Helm values later).

Ports follow Istio's well-known numbers so that people who know one mesh can read the other's pods:

======  =====================================================================================================
15000   Envoy admin, bound to 127.0.0.1 only (never captured: loopback is exempt)
15001   outbound capture: every outbound TCP connection of the app is redirected here
15006   inbound capture: every inbound TCP connection to the pod is redirected here (STRICT mTLS)
15020   health: served by the agent in plaintext; kubelet probes are rewritten to it (never captured)
======  =====================================================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

Mode = Literal["native", "classic"]

#: The names the injector gives its containers and volumes (also how "already injected" is recognised).
PROXY_CONTAINER: Final = "meshwork-proxy"
INIT_CONTAINER: Final = "meshwork-init"
TOKEN_VOLUME: Final = "meshwork-token"
WORK_VOLUME: Final = "meshwork-proxy"
CA_VOLUME: Final = "meshwork-ca"
TOKEN_DIR: Final = "/var/run/secrets/meshwork/tokens"
WORK_DIR: Final = "/var/run/meshwork/proxy"
CA_DIR: Final = "/var/run/secrets/meshwork/ca"


def _no_labels(namespace: str) -> Mapping[str, str] | None:
    return None


@dataclass(frozen=True, slots=True)
class Resources:
    cpu_request: str = "50m"
    memory_request: str = "64Mi"
    cpu_limit: str | None = None
    memory_limit: str | None = "256Mi"

    def as_k8s(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {"requests": {"cpu": self.cpu_request, "memory": self.memory_request}}
        limits = {k: v for k, v in (("cpu", self.cpu_limit), ("memory", self.memory_limit)) if v}
        if limits:
            out["limits"] = limits
        return out


@dataclass(frozen=True, slots=True)
class InjectionSettings:
    """Mesh-wide injection settings. Every field marked *per pod* can be overridden by an annotation
    (:mod:`mesh_operator.inject.annotations` lists them)."""

    #: The sidecar image (Envoy + the agent); also runs the capture init container unless ``init_image`` is set.
    proxy_image: str = "localhost/meshwork/proxy:latest"
    #: *per pod*. The image of the init container that installs the iptables rules (default: ``proxy_image``).
    init_image: str | None = None
    image_pull_policy: str = "IfNotPresent"
    #: *per pod*. ``native``: an init container with ``restartPolicy: Always`` (Kubernetes >= 1.29);
    #: ``classic``: the first of ``containers``, for older clusters.
    mode: Mode = "native"
    #: *per pod*.
    resources: Resources = field(default_factory=Resources)
    #: *per pod*. Envoy's log level.
    log_level: str = "warning"
    #: *per pod*. Envoy worker threads.
    concurrency: int = 2
    #: *per pod*. Seconds Envoy drains for on SIGTERM before it exits.
    drain_seconds: int = 5
    #: The UID/GID Envoy and the agent run as: their own traffic is never captured.
    proxy_uid: int = 1337
    inbound_port: int = 15006
    outbound_port: int = 15001
    admin_port: int = 15000
    health_port: int = 15020
    #: The control plane's xDS endpoint (host:port), as the agent dials it.
    control_plane: str = "meshwork.meshwork-system.svc:15012"
    #: Where the agent sends its token and CSR (mesh_operator.identity, ``POST /identity/v1/certificate``).
    identity_url: str = "https://meshwork.meshwork-system.svc:15017/identity/v1/certificate"
    #: The control plane's SPIFFE ID: the agent accepts no other server for xDS or certificates.
    control_plane_id: str = "spiffe://cluster.local/ns/meshwork-system/sa/meshwork-control-plane"
    trust_domain: str = "cluster.local"
    #: The audience of the projected ServiceAccount token the agent presents.
    token_audience: str = "meshwork"
    token_expiration_seconds: int = 3600
    #: The ConfigMap (in every injected namespace) holding the mesh's trust bundle ``ca.pem``.
    ca_configmap: str = "meshwork-root-ca"
    #: The mesh's own namespace: never injected.
    mesh_namespace: str = "meshwork-system"
    #: Namespaces that are never injected, whatever their labels or the pod's annotations say.
    never_inject: frozenset[str] = frozenset({"kube-system", "kube-public", "kube-node-lease"})
    #: *per pod*. Rewrite kubelet HTTP/TCP/gRPC probes to the agent's health port.
    rewrite_probes: bool = True
    #: The labels of a namespace, or None when unknown. The admission server passes its namespace index here
    #: (an AdmissionReview carries the pod, not its namespace); ``meshctl inject`` passes the namespaces in its
    #: input. Labels decide injection only through ``meshwork.io/inject=enabled``.
    namespace_labels: Callable[[str], Mapping[str, str] | None] = field(default=_no_labels, compare=False)

    @property
    def capture_image(self) -> str:
        return self.init_image or self.proxy_image
