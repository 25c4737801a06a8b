"""Envoy bootstrap documents (plain dicts, ready for ``json.dump`` / YAML).

* :func:`render_bootstrap` – a complete *static* bootstrap of one proxy's resources: listeners with their route
  configuration inline (instead of RDS), clusters ``STATIC`` with their load assignment inline (instead of EDS),
  and the SDS secret names resolved to ``static_resources.secrets`` (an ``SdsSecretConfig`` without
  ``sds_config`` names a static secret). For ``envoy --mode validate`` and offline rendering. Pure: certificate
  material comes in as PEM strings or file paths.
* :func:`ads_bootstrap` – what a live sidecar starts with: node identity, admin on 127.0.0.1, LDS/CDS over ADS
  from the Meshwork xDS server (HTTP/2 is mandatory on that cluster: without it Envoy stays PRE_INITIALIZING and
  logs nothing), keepalives, optional mTLS to the server.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Final

import betterproto2

from xds_server import ir, serialize
from xds_server.errors import TranslationError
from xds_server.translate.cluster import HTTP_PROTOCOL_OPTIONS

if TYPE_CHECKING:
    from xds_server.translate import EnvoyResources

_HCM_URL: Final = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_HPO_URL: Final = f"type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}"
_TLS_URL: Final = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"


def _plain(msg: betterproto2.Message) -> dict[str, Any]:
    return serialize.proto_dict(msg)


def to_proto_json(message: betterproto2.Message) -> dict[str, Any]:
    """Proto-JSON of a message (snake_case field names, as in Envoy's docs) with its ``@type``."""
    return {"@type": serialize.type_url_of(message), **_plain(message)}


def _walk(node: Any, fn: Callable[[dict[str, Any]], None]) -> None:
    if isinstance(node, dict):
        fn(node)
        for v in node.values():
            _walk(v, fn)
    elif isinstance(node, list):
        for v in node:
            _walk(v, fn)


def _data(pem: str | None, path: str | None) -> dict[str, str] | None:
    if pem is not None:
        return {"inline_string": pem}
    if path is not None:
        return {"filename": path}
    return None


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _node(node: ir.NodeInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"id": node.id, "cluster": node.cluster}
    if node.region or node.zone:
        out["locality"] = {k: v for k, v in (("region", node.region), ("zone", node.zone)) if v}
    return out


def _admin(admin_port: int) -> dict[str, Any]:
    return {"address": _address("127.0.0.1", admin_port)}


def render_bootstrap(
    cfg: ir.ProxyConfig,
    resources: EnvoyResources,
    *,
    admin_port: int = 15000,
    cert_chain_pem: str | None = None,
    private_key_pem: str | None = None,
    trust_bundle_pem: str | None = None,
    cert_chain_path: str | None = None,
    private_key_path: str | None = None,
    trust_bundle_path: str | None = None,
) -> dict[str, Any]:
    """A complete static bootstrap for ``cfg`` (see the module docstring).

    Secrets: ``MeshSettings.cert_secret`` gets the chain and key, ``MeshSettings.bundle_secret`` the trust bundle,
    each from the PEM string if given, else from the file path. Raises :class:`TranslationError` if a secret the
    config refers to has no material.
    """
    routes = {rc.name: _plain(rc) for rc in resources.route_configs}
    assignments = {cla.cluster_name: _plain(cla) for cla in resources.cluster_load_assignments}
    listeners = [_plain(lis) for lis in resources.listeners]
    clusters = [_plain(c) for c in resources.clusters]
    used_secrets: set[str] = set()

    def to_static(d: dict[str, Any]) -> None:
        if d.get("@type") == _HCM_URL and "rds" in d:
            name = d.pop("rds")["route_config_name"]
            if name not in routes:
                raise TranslationError(f"listener refers to route configuration {name!r} that is not rendered")
            d["route_config"] = copy.deepcopy(routes[name])
        if "sds_config" in d and "name" in d:
            del d["sds_config"]
            used_secrets.add(d["name"])

    _walk(listeners, to_static)
    _walk(clusters, to_static)
    for c in clusters:
        if c.get("type") == "EDS":
            c["type"] = "STATIC"
            c.pop("eds_cluster_config", None)
            c["load_assignment"] = assignments.get(c["name"], {"cluster_name": c["name"]})

    material = {
        cfg.mesh.cert_secret: (
            "tls_certificate",
            {
                "certificate_chain": _data(cert_chain_pem, cert_chain_path),
                "private_key": _data(private_key_pem, private_key_path),
            },
        ),
        cfg.mesh.bundle_secret: ("validation_context", {"trusted_ca": _data(trust_bundle_pem, trust_bundle_path)}),
    }
    secrets = []
    for name in sorted(used_secrets):
        if name not in material or any(v is None for v in material[name][1].values()):
            raise TranslationError(f"secret {name!r} is referenced but no PEM string or file was given for it")
        kind, body = material[name]
        secrets.append({"name": name, kind: body})

    return {
        "node": _node(cfg.node),
        "admin": _admin(admin_port),
        "static_resources": {"listeners": listeners, "clusters": clusters, "secrets": secrets},
    }


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


XDS_CLUSTER: Final = "meshwork-xds"


def ads_bootstrap(
    node: ir.NodeInfo,
    xds_host: str,
    xds_port: int,
    admin_port: int = 15000,
    *,
    cert_chain_path: str | None = None,
    private_key_path: str | None = None,
    ca_path: str | None = None,
    server_name: str | None = None,
    server_spiffe_id: str | None = None,
    watch_credentials: bool = False,
    delta: bool = False,
    xds_cluster: str = XDS_CLUSTER,
) -> dict[str, Any]:
    """Bootstrap of a live sidecar: everything else arrives over ADS (LDS and CDS, then RDS/EDS/SDS by reference).

    With ``cert_chain_path``/``private_key_path``/``ca_path`` the connection to the xDS server is mTLS
    (``server_name`` is the SNI, defaulting to ``xds_host``); ``server_spiffe_id`` additionally requires that exact
    URI SAN on the server's certificate; ``watch_credentials`` makes Envoy reload rotated files from the
    certificate's directory (files must be replaced atomically, e.g. by rename). ``delta`` selects Delta ADS.
    """
    cluster: dict[str, Any] = {
        "name": xds_cluster,
        "type": "STATIC" if _is_ip(xds_host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": xds_cluster,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(xds_host, xds_port)}}]}],
        },
        # Mandatory: xDS is gRPC, i.e. HTTP/2. Pings detect a dead server behind a silent network.
        "typed_extension_protocol_options": {
            HTTP_PROTOCOL_OPTIONS: {
                "@type": _HPO_URL,
                "explicit_http_config": {
                    "http2_protocol_options": {"connection_keepalive": {"interval": "30s", "timeout": "10s"}}
                },
            }
        },
        "upstream_connection_options": {
            "tcp_keepalive": {"keepalive_probes": 3, "keepalive_time": 30, "keepalive_interval": 10}
        },
    }
    if cert_chain_path or private_key_path or ca_path:
        if not (cert_chain_path and private_key_path and ca_path):
            raise TranslationError("mTLS to the xDS server needs all of cert_chain_path, private_key_path, ca_path")
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": _TLS_URL,
                "sni": server_name or xds_host,
                "common_tls_context": {
                    "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                    "alpn_protocols": ["h2"],
                    "tls_certificates": [
                        {
                            "certificate_chain": {"filename": cert_chain_path},
                            "private_key": {"filename": private_key_path},
                        }
                    ],
                    "validation_context": {"trusted_ca": {"filename": ca_path}},
                },
            },
        }
        ctx = cluster["transport_socket"]["typed_config"]["common_tls_context"]
        if server_spiffe_id:
            ctx["validation_context"]["match_typed_subject_alt_names"] = [
                {"san_type": "URI", "matcher": {"exact": server_spiffe_id}}
            ]
        if watch_credentials:
            watched = {"path": str(PurePath(cert_chain_path).parent)}
            ctx["tls_certificates"][0]["watched_directory"] = watched
            ctx["validation_context"]["watched_directory"] = dict(watched)
    ads_source = {"ads": {}, "resource_api_version": "V3"}
    return {
        "node": _node(node),
        "admin": _admin(admin_port),
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": xds_cluster}}],
            },
            "lds_config": dict(ads_source),
            "cds_config": dict(ads_source),
        },
        "static_resources": {"clusters": [cluster]},
    }
