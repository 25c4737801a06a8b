"""Everything one local sidecar needs on disk: its bootstrap and its credentials for the xDS connection.

The xDS connection is mTLS: the sidecar presents a certificate of its workload's identity, issued when the sidecar
is set up and renewed by the runner at half its life. Envoy reads it through file-based SDS and reloads it when a
renewal swaps the credentials in (the pod agent's way, ``mesh_operator.agent.creds``), without a restart. It checks
the control plane's SPIFFE ID. Key files are owner-only, in an owner-only directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mesh_operator.agent.creds import client_tls_context, new_generation, publish, sds_files
from mesh_operator.control.certs import CertificateManager
from mesh_operator.files import atomic_write
from mesh_operator.translate.state import WorkloadInfo
from xds_server import ir
from xds_server.ca import SpiffeId
from xds_server.envoy_binary import envoy_path
from xds_server.translate import ads_bootstrap


@dataclass(frozen=True)
class SidecarFiles:
    directory: Path
    bootstrap: Path
    renew_at: datetime


def node_info(w: WorkloadInfo, trust_domain: str) -> ir.NodeInfo:
    return ir.NodeInfo(
        id=w.node_id,
        namespace=w.namespace,
        workload=w.name,
        service_account=w.service_account,
        spiffe_id=str(SpiffeId(trust_domain, w.namespace, w.service_account)),
        region=w.region,
        zone=w.zone,
    )


def write_credentials(directory: Path, certs: CertificateManager, identity: str) -> datetime:
    """(Re)issue the sidecar's xDS client certificate into ``directory/creds``; returns when to renew it."""
    creds = directory / "creds"
    keypair = certs.issuer.issue_keypair(SpiffeId.parse(identity), ttl=certs.leaf_ttl)
    gen = new_generation(creds, f"{keypair.serial_number:x}")
    atomic_write(gen / "cert.pem", keypair.chain_pem, 0o600)
    atomic_write(gen / "key.pem", keypair.private_key_pem, 0o600)
    atomic_write(gen / "ca.pem", certs.bundle.to_pem(), 0o644)
    publish(creds, gen)
    return keypair.not_before + (keypair.not_after - keypair.not_before) / 2


def prepare(
    directory: Path,
    w: WorkloadInfo,
    certs: CertificateManager,
    *,
    xds_port: int,
    admin_port: int,
    delta: bool = False,
) -> SidecarFiles:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    node = node_info(w, certs.trust_domain)
    renew_at = write_credentials(directory, certs, node.spiffe_id)
    creds = directory / "creds"
    doc = ads_bootstrap(
        node,
        "127.0.0.1",
        xds_port,
        admin_port,
        cert_chain_path=str(creds / "cert.pem"),
        private_key_path=str(creds / "key.pem"),
        ca_path=str(creds / "ca.pem"),
        server_name="meshwork-control-plane",
    )
    _use_file_sds(doc, directory, creds, str(certs.control_plane_identity()))
    if delta:
        doc["dynamic_resources"]["ads_config"]["api_type"] = "DELTA_GRPC"
    bootstrap = directory / "bootstrap.json"
    atomic_write(bootstrap, json.dumps(doc, indent=2).encode(), 0o600)
    return SidecarFiles(directory, bootstrap, renew_at)


def envoy_argv(files: SidecarFiles, log_level: str = "warning", concurrency: int | None = None) -> list[str]:
    threads = [] if concurrency is None else ["--concurrency", str(concurrency)]
    return [
        str(envoy_path()),
        "-c",
        str(files.bootstrap),
        "--disable-hot-restart",
        "--log-path",
        str(files.directory / "envoy.log"),
        "-l",
        log_level,
        "--drain-time-s",
        "1",
        # Access logs reach the file within half a second (Envoy's default is every 10 s).
        "--file-flush-interval-msec",
        "500",
        *threads,
    ]


def _use_file_sds(doc: dict[str, Any], directory: Path, creds: Path, control_plane_id: str) -> None:
    """The xDS cluster reads its credentials through file-based SDS (reloaded on renewal) and checks the control
    plane's SPIFFE ID."""
    for path, content in sds_files(directory, creds).items():
        atomic_write(path, json.dumps(content).encode(), 0o600)
    for cluster in doc["static_resources"]["clusters"]:
        sock = cluster.get("transport_socket")
        if sock:
            sock["typed_config"]["common_tls_context"] = client_tls_context(directory, creds, control_plane_id)
