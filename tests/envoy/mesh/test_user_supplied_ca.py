"""Local mode with the user's own CA: workload certificates chain up to the intermediate and root supplied."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

from cryptography import x509

from mesh_operator.testing.localmesh import LocalMeshBuilder
from xds_server.ca import SpiffeId, create_intermediate, create_root
from xds_server.ca.store import save_issuer


def test_workload_certificates_are_issued_by_a_user_supplied_intermediate(
    mesh: LocalMeshBuilder, tmp_path: Path
) -> None:
    root = create_root("test.local")
    intermediate = create_intermediate(root)
    ca_dir = tmp_path / "my-ca"
    save_issuer(ca_dir, intermediate)
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    args = [
        "--ca-cert",
        str(ca_dir / "ca-cert.pem"),
        "--ca-key",
        str(ca_dir / "ca-key.pem"),
        "--ca-chain",
        str(ca_dir / "cert-chain.pem"),
    ]
    with mesh.run(extra_args=args) as m:
        response = m.get("caller", "backend", "/")
        assert response.status == 200
        assert "URI=spiffe://test.local/ns/default/sa/caller" in response.json()["client_cert"]
        # The certificate backend's sidecar presents to a mesh client is signed by the supplied intermediate.
        client = intermediate.issue_keypair(SpiffeId("test.local", "default", "caller"))
        (tmp_path / "client.pem").write_bytes(client.chain_pem)
        (tmp_path / "client.key").write_bytes(client.private_key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
        port = mesh.workloads["backend-1"].inbound_port
        assert port is not None
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        served = x509.load_der_x509_certificate(der)
        assert served.issuer == intermediate.certificate.subject
        # ... and the trust bundle the sidecars use is the supplied root.
        certs = json.loads(m.sidecar_admin("backend-1", "/certs"))["certificates"]
        # Envoy prints serials as hex padded to whole bytes ("05ab..."): compare the numbers.
        ca_serials = {int(c["serial_number"], 16) for entry in certs for c in entry.get("ca_cert", [])}
        assert root.certificate.serial_number in ca_serials
