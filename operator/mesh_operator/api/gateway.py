"""The Gateway API subset Meshwork reads: HTTPRoute and GRPCRoute (``gateway.networking.k8s.io/v1``) whose
``parentRefs`` name a Service (the GAMMA mesh profile), and the experimental XMesh (GEP-3949).

These are upstream's kinds, not Meshwork's: their CRDs come from ``sigs.k8s.io/gateway-api`` v1.6.1
(scripts/gateway-api/fetch-crds.sh), never from our crdgen, so they are not in ``CRD_KINDS``. The models follow
upstream's field names and defaults; fields Meshwork does not implement are still parsed (an object the API server
accepts must parse here) and reported as ``UnsupportedValue`` by translation.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mesh_operator.api.common import Model, ObjectMeta

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = f"{GATEWAY_GROUP}/v1"
XMESH_VERSION = "gateway.networking.x-k8s.io/v1alpha1"
#: The ``controllerName`` Meshwork writes into route status and claims in XMesh.
CONTROLLER_NAME = "meshwork.io/mesh-controller"

#: Gateway API durations: ``^([0-9]{1,5}(h|m|s|ms)){1,4}$`` (GEP-2257).
GATEWAY_DURATION_PATTERN = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"
GatewayDuration = str


class ParentReference(Model):
    group: str = GATEWAY_GROUP
    kind: str = "Gateway"
    namespace: str | None = None
    name: str = Field(min_length=1, max_length=253)
    section_name: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)

    def is_service(self) -> bool:
        return self.group in ("", "core") and self.kind == "Service"


class BackendRef(Model):
    group: str = ""
    kind: str = "Service"
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    weight: int = Field(default=1, ge=0, le=1_000_000)
    filters: list[dict[str, Any]] = Field(default_factory=list)


class HTTPHeader(Model):
    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
    value: str = Field(max_length=4096)


class HeaderFilter(Model):
    set: list[HTTPHeader] = Field(default_factory=list, max_length=16)
    add: list[HTTPHeader] = Field(default_factory=list, max_length=16)
    remove: list[str] = Field(default_factory=list, max_length=16)


class Fraction(Model):
    numerator: int = Field(ge=0)
    denominator: int = Field(default=100, ge=1)


class RequestMirror(Model):
    backend_ref: BackendRef
    percent: int | None = Field(default=None, ge=0, le=100)
    fraction: Fraction | None = None


class PathModifier(Model):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: str | None = Field(default=None, max_length=1024)
    replace_prefix_match: str | None = Field(default=None, max_length=1024)


class RequestRedirect(Model):
    scheme: Literal["http", "https"] | None = None
    hostname: str | None = Field(default=None, max_length=253)
    path: PathModifier | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    status_code: Literal[301, 302, 303, 307, 308] = 302


class URLRewrite(Model):
    hostname: str | None = Field(default=None, max_length=253)
    path: PathModifier | None = None


class Cors(Model):
    allow_origins: list[str] = Field(default_factory=list, max_length=64)
    allow_credentials: bool | None = None
    allow_methods: list[str] = Field(default_factory=list, max_length=9)
    allow_headers: list[str] = Field(default_factory=list, max_length=64)
    expose_headers: list[str] = Field(default_factory=list, max_length=64)
    max_age: int = Field(default=5, ge=1)


class LocalObjectReference(Model):
    group: str
    kind: str
    name: str


FilterType = Literal[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "CORS",
    "ExternalAuth",
    "ExtensionRef",
]


class HTTPRouteFilter(Model):
    type: FilterType
    request_header_modifier: HeaderFilter | None = None
    response_header_modifier: HeaderFilter | None = None
    request_mirror: RequestMirror | None = None
    request_redirect: RequestRedirect | None = None
    url_rewrite: URLRewrite | None = Field(default=None, alias="urlRewrite")
    cors: Cors | None = None
    external_auth: dict[str, Any] | None = None
    extension_ref: LocalObjectReference | None = None


class HTTPPathMatch(Model):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: str = Field(default="/", max_length=1024)


class HTTPHeaderMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: str = Field(min_length=1, max_length=256)
    value: str = Field(max_length=4096)


class HTTPRouteMatch(Model):
    path: HTTPPathMatch | None = Field(default_factory=HTTPPathMatch)
    headers: list[HTTPHeaderMatch] = Field(default_factory=list, max_length=16)
    query_params: list[HTTPHeaderMatch] = Field(default_factory=list, max_length=16)
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"] | None = None


class HTTPRouteTimeouts(Model):
    request: GatewayDuration | None = Field(default=None, pattern=GATEWAY_DURATION_PATTERN)
    backend_request: GatewayDuration | None = Field(default=None, pattern=GATEWAY_DURATION_PATTERN)


class HTTPRouteRule(Model):
    name: str | None = Field(default=None, max_length=253)
    matches: list[HTTPRouteMatch] = Field(default_factory=lambda: [HTTPRouteMatch()], max_length=64)
    filters: list[HTTPRouteFilter] = Field(default_factory=list, max_length=16)
    backend_refs: list[BackendRef] = Field(default_factory=list, max_length=16)
    timeouts: HTTPRouteTimeouts | None = None
    retry: dict[str, Any] | None = None
    session_persistence: dict[str, Any] | None = None


class HTTPRouteSpec(Model):
    parent_refs: list[ParentReference] = Field(default_factory=list, max_length=32)
    hostnames: list[str] = Field(default_factory=list, max_length=16)
    rules: list[HTTPRouteRule] = Field(default_factory=lambda: [HTTPRouteRule()], max_length=16)


class HTTPRoute(Model):
    api_version: Literal["gateway.networking.k8s.io/v1"] = "gateway.networking.k8s.io/v1"
    kind: Literal["HTTPRoute"] = "HTTPRoute"
    metadata: ObjectMeta
    spec: HTTPRouteSpec
    #: Kept as read: other controllers' entries must survive our writes.
    status: dict[str, Any] | None = None


class GRPCMethodMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    service: str | None = Field(default=None, max_length=1024)
    method: str | None = Field(default=None, max_length=1024)


class GRPCRouteMatch(Model):
    method: GRPCMethodMatch | None = None
    headers: list[HTTPHeaderMatch] = Field(default_factory=list, max_length=16)


class GRPCRouteFilter(Model):
    type: Literal["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "ExtensionRef"]
    request_header_modifier: HeaderFilter | None = None
    response_header_modifier: HeaderFilter | None = None
    request_mirror: RequestMirror | None = None
    extension_ref: LocalObjectReference | None = None


class GRPCRouteRule(Model):
    name: str | None = Field(default=None, max_length=253)
    matches: list[GRPCRouteMatch] = Field(default_factory=list, max_length=64)
    filters: list[GRPCRouteFilter] = Field(default_factory=list, max_length=16)
    backend_refs: list[BackendRef] = Field(default_factory=list, max_length=16)
    session_persistence: dict[str, Any] | None = None


class GRPCRouteSpec(Model):
    parent_refs: list[ParentReference] = Field(default_factory=list, max_length=32)
    hostnames: list[str] = Field(default_factory=list, max_length=16)
    rules: list[GRPCRouteRule] = Field(default_factory=lambda: [GRPCRouteRule()], max_length=16)


class GRPCRoute(Model):
    api_version: Literal["gateway.networking.k8s.io/v1"] = "gateway.networking.k8s.io/v1"
    kind: Literal["GRPCRoute"] = "GRPCRoute"
    metadata: ObjectMeta
    spec: GRPCRouteSpec
    status: dict[str, Any] | None = None


class XMeshSpec(Model):
    controller_name: str
    description: str | None = None
    parameters_ref: dict[str, Any] | None = None


class XMesh(Model):
    """GEP-3949 (experimental): a cluster-scoped object naming the mesh; its status lists supported features."""

    api_version: Literal["gateway.networking.x-k8s.io/v1alpha1"] = "gateway.networking.x-k8s.io/v1alpha1"
    kind: Literal["XMesh"] = "XMesh"
    metadata: ObjectMeta
    spec: XMeshSpec
    status: dict[str, Any] | None = None


GatewayRoute = HTTPRoute | GRPCRoute
RouteRule = HTTPRouteRule | GRPCRouteRule


def rules_of(route: GatewayRoute) -> list[RouteRule]:
    """A route's rules with one element type (HTTPRoute and GRPCRoute rules share name, filters, backendRefs)."""
    return list(route.spec.rules)


def filters_of(rule: RouteRule) -> list[HTTPRouteFilter | GRPCRouteFilter]:
    return list(rule.filters)


GATEWAY_KINDS: dict[str, type[HTTPRoute | GRPCRoute | XMesh]] = {
    "HTTPRoute": HTTPRoute,
    "GRPCRoute": GRPCRoute,
    "XMesh": XMesh,
}
GATEWAY_API_VERSIONS = {"HTTPRoute": GATEWAY_VERSION, "GRPCRoute": GATEWAY_VERSION, "XMesh": XMESH_VERSION}
