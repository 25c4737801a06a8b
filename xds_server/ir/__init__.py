"""The intermediate representation: the contract between the operator side and the xDS side.

Kubernetes-free, immutable (frozen dataclasses, tuples), already validated: the xDS translation may assume every
value is in range. Split by area:

* :mod:`.common`   – provenance, durations, node and mesh-wide settings
* :mod:`.routes`   – HTTP matches and route actions (splits, mirror, fault, rewrites, retries, rate limits)
* :mod:`.clusters` – upstream clusters: endpoints, load balancing, circuit breaking, outlier and health checks
* :mod:`.security` – TLS/mTLS settings and access (RBAC) rules
* :mod:`.authn`    – JWT providers and the request principals access rules match
* :mod:`.proxy`    – listeners and :class:`ProxyConfig`, everything one sidecar receives
* :mod:`.transparent` – the capture listeners of a sidecar whose pod's traffic is captured

``load`` builds the IR from plain data (YAML), so IR can be golden-test input on its own.
"""

from xds_server.ir.authn import JwtAuthn, JwtProvider, RemoteJwks, RequestPrincipal
from xds_server.ir.clusters import (
    CircuitBreakers,
    Cluster,
    Endpoint,
    HealthCheck,
    LoadBalancer,
    OutlierDetection,
    RetryBudget,
)
from xds_server.ir.common import AccessLogSettings, MeshSettings, NodeInfo, Provenance, TracingSettings
from xds_server.ir.proxy import InboundListener, OutboundListener, ProxyConfig
from xds_server.ir.routes import (
    Cors,
    Fault,
    GlobalDescriptor,
    GlobalRateLimit,
    HashPolicy,
    HeaderEdits,
    HeaderMatch,
    Mirror,
    PathMatch,
    QueryMatch,
    RateLimit,
    Redirect,
    Retry,
    Route,
    RouteMatch,
    WeightedCluster,
)
from xds_server.ir.security import AccessRule, InboundTls, Principal, RbacPolicy, RequestMatch, UpstreamTls
from xds_server.ir.transparent import HostRoutes, PortRoutes, TransparentConfig

__all__ = [
    "AccessLogSettings",
    "AccessRule",
    "CircuitBreakers",
    "Cluster",
    "Cors",
    "Endpoint",
    "Fault",
    "GlobalDescriptor",
    "GlobalRateLimit",
    "HashPolicy",
    "HeaderEdits",
    "HeaderMatch",
    "HealthCheck",
    "HostRoutes",
    "InboundListener",
    "InboundTls",
    "JwtAuthn",
    "JwtProvider",
    "LoadBalancer",
    "MeshSettings",
    "Mirror",
    "NodeInfo",
    "OutboundListener",
    "OutlierDetection",
    "PathMatch",
    "PortRoutes",
    "Principal",
    "Provenance",
    "ProxyConfig",
    "QueryMatch",
    "RateLimit",
    "RbacPolicy",
    "Redirect",
    "RemoteJwks",
    "RequestMatch",
    "RequestPrincipal",
    "Retry",
    "RetryBudget",
    "Route",
    "RouteMatch",
    "TracingSettings",
    "TransparentConfig",
    "UpstreamTls",
    "WeightedCluster",
]
