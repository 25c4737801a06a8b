"""Envoy's bootstrap, written by the agent: ADS over mTLS to the control plane.

The xDS client certificate and the trust bundle come from **file-based SDS** (``path_config_source`` with a
``watched_directory``): Envoy re-reads them when the agent swaps the credentials directory's ``..data`` link,
so a renewal never restarts Envoy. (Plain ``filename`` data sources in a static cluster are read once: a renewed
file would only be seen by a new Envoy.) Otherwise the same cluster as ``xds_server.translate.ads_bootstrap``,
built here without importing the translator: the agent must stay small."""

from __future__ import annotations

import ipaddress
from typing import Any

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


CERT_SECRET = "xds-client-certificate"
CA_SECRET = "xds-trust-bundle"
_SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def _sds(cfg: AgentConfig, name: str) -> dict[str, Any]:
    path = cfg.work_dir / f"sds-{name}.json"
    source = {"path_config_source": {"path": str(path), "watched_directory": {"path": str(cfg.creds_dir)}}}
    return {"name": name, "sds_config": {**source, "resource_api_version": "V3"}}


def sds_files(cfg: AgentConfig) -> dict[str, dict[str, Any]]:
    """The two SDS files (path -> content) the bootstrap refers to; they point at the credential links."""
    creds = cfg.creds_dir
    cert = {
        "@type": _SECRET,
        "name": CERT_SECRET,
        "tls_certificate": {
            "certificate_chain": {"filename": str(creds / "cert.pem")},
            "private_key": {"filename": str(creds / "key.pem")},
        },
    }
    ca = {
        "@type": _SECRET,
        "name": CA_SECRET,
        "validation_context": {"trusted_ca": {"filename": str(creds / "ca.pem")}},
    }
    return {
        str(cfg.work_dir / f"sds-{CERT_SECRET}.json"): {"resources": [cert]},
        str(cfg.work_dir / f"sds-{CA_SECRET}.json"): {"resources": [ca]},
    }


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
                "common_tls_context": {
                    "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                    "alpn_protocols": ["h2"],
                    "tls_certificate_sds_secret_configs": [_sds(cfg, CERT_SECRET)],
                    "combined_validation_context": {
                        "default_validation_context": {
                            "match_typed_subject_alt_names": [
                                {"san_type": "URI", "matcher": {"exact": cfg.control_plane_id}}
                            ]
                        },
                        "validation_context_sds_secret_config": _sds(cfg, CA_SECRET),
                    },
                },
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
