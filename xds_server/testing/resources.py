"""Hand-built xDS resources for tests: small, valid Envoy config as :class:`CachedResource` (proto-JSON in, cached
bytes out, through envoy-data-plane's ``from_dict``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from xds_server.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, CachedResource, Snapshot
from xds_server.wire import envoy_module, message_class

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_ADS = {"ads": {}, "resourceApiVersion": "V3"}


def from_json(type_url: str, doc: Mapping[str, Any], name: str | None = None) -> CachedResource:
    """Serialize a proto-JSON document of ``type_url`` once and wrap it."""
    if "HttpConnectionManager" in str(doc):
        envoy_module("envoy.extensions.filters.http.router.v3")
        envoy_module("envoy.extensions.filters.network.http_connection_manager.v3")
    msg = message_class(type_url).from_dict(dict(doc))  # type: ignore[attr-defined]
    return CachedResource.of(type_url, name or str(doc.get("name") or doc.get("clusterName")), bytes(msg))


def eds_cluster(name: str, *, connect_timeout: str = "1s") -> CachedResource:
    return from_json(
        CLUSTER,
        {"name": name, "type": "EDS", "connectTimeout": connect_timeout, "edsClusterConfig": {"edsConfig": _ADS}},
    )


def load_assignment(cluster_name: str, endpoints: Iterable[tuple[str, int]]) -> CachedResource:
    lb = [{"endpoint": {"address": {"socketAddress": {"address": h, "portValue": p}}}} for h, p in endpoints]
    return from_json(ENDPOINT, {"clusterName": cluster_name, "endpoints": [{"lbEndpoints": lb}]})


def http_listener(name: str, port: int, route_config_name: str, *, address: str = "127.0.0.1") -> CachedResource:
    hcm = {
        "@type": HCM,
        "statPrefix": name,
        "rds": {"routeConfigName": route_config_name, "configSource": _ADS},
        "httpFilters": [{"name": "envoy.filters.http.router", "typedConfig": {"@type": ROUTER}}],
    }
    return from_json(
        LISTENER,
        {
            "name": name,
            "address": {"socketAddress": {"address": address, "portValue": port}},
            "filterChains": [
                {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typedConfig": hcm}]}
            ],
        },
    )


def route_config(name: str, cluster: str, *, response_headers: Mapping[str, str] | None = None) -> CachedResource:
    route: dict[str, Any] = {"match": {"prefix": "/"}, "route": {"cluster": cluster}}
    doc: dict[str, Any] = {"name": name, "virtualHosts": [{"name": "all", "domains": ["*"], "routes": [route]}]}
    if response_headers:
        doc["responseHeadersToAdd"] = [
            {"header": {"key": k, "value": v}, "appendAction": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for k, v in response_headers.items()
        ]
    return from_json(ROUTE, doc)


def generic_secret(name: str, value: str) -> CachedResource:
    return from_json(SECRET, {"name": name, "genericSecret": {"secret": {"inlineString": value}}})


def bad_listener(name: str, port: int) -> CachedResource:
    """Serializes fine, but Envoy rejects it (NACK): the bind address is not an IP address."""
    return http_listener(name, port, "unused", address="not-an-ip")


def simple_snapshot(
    upstream_port: int, listener_port: int, *, cluster: str = "backend", tag: str = "v1", **extra: CachedResource
) -> Snapshot:
    """One listener -> RDS route config -> one EDS cluster -> one local endpoint; ``tag`` is returned to clients
    in an ``x-meshwork-tag`` response header, so a config change is visible in traffic."""
    items = [
        eds_cluster(cluster),
        load_assignment(cluster, [("127.0.0.1", upstream_port)]),
        http_listener("ingress", listener_port, "routes"),
        route_config("routes", cluster, response_headers={"x-meshwork-tag": tag}),
        *extra.values(),
    ]
    return Snapshot.from_resources(items)
