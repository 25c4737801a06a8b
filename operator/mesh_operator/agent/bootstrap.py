"""Envoy's bootstrap, written by the agent: ADS over mTLS to the control plane.

The xDS client certificate and the trust bundle come from file-based SDS (``mesh_operator.agent.creds``), so a
renewal never restarts Envoy. Otherwise the same cluster as ``xds_server.translate.ads_bootstrap``,
built here without importing the translator: the agent must stay small."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from mesh_operator.agent import creds
from mesh_operator.agent.config import AgentConfig

_HPO = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
XDS_CLUSTER = "meshwork-xds"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def sds_files(cfg: AgentConfig) -> dict[Path, dict[str, Any]]:
    """The two SDS files (path -> content) the bootstrap refers to."""
    return creds.sds_files(cfg.work_dir, cfg.creds_dir)


def bootstrap(cfg: AgentConfig) -> dict[str, Any]:
    host, _, port_text = cfg.control_plane.rpartition(":")
    if not host or not port_text.isdigit():
        raise ValueError(f"MESHWORK_CONTROL_PLANE={cfg.control_plane!r} is not host:port")
    cluster: dict[str, Any] = {
        "name": XDS_CLUSTER,
        "type": "STATIC" if _is_ip(host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(host, int(port_text))}}]}],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _HPO,
                "explicit_http_config": {
                    "http2_protocol_options": {"connection_keepalive": {"interval": "30s", "timeout": "10s"}}
                },
            }
        },
        "upstream_connection_options": {
            "tcp_keepalive": {"keepalive_probes": 3, "keepalive_time": 30, "keepalive_interval": 10}
        },
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": _TLS,
                "sni": host,
                "common_tls_context": creds.client_tls_context(cfg.work_dir, cfg.creds_dir, cfg.control_plane_id),
            },
        },
    }
    ads = {"ads": {}, "resource_api_version": "V3"}
    return {
        "node": {"id": cfg.node_id, "cluster": "meshwork"},
        "admin": {"address": _address("127.0.0.1", cfg.admin_port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
            "lds_config": dict(ads),
            "cds_config": dict(ads),
        },
        "static_resources": {"clusters": [cluster]},
    }
