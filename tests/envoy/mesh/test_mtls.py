"""Mesh mTLS on the wire: identities reach the app, STRICT refuses plaintext and foreign certificates, PERMISSIVE
accepts both (and says so)."""

from __future__ import annotations

import http.client
import json
import ssl
import tempfile
from pathlib import Path

import pytest

from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh
from xds_server.ca import Issuer, SpiffeId, create_root, store

CALLER_ID = "spiffe://test.local/ns/default/sa/caller"
REFUSED = (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)


def _mesh(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])


def _direct(m: RunningMesh, *, issuer: Issuer | None = None) -> tuple[int, dict[str, str]]:
    """GET / straight to backend's inbound port: plaintext, or mTLS with a caller certificate from ``issuer``."""
    port = m.builder.workloads["backend-1"].inbound_port
    assert port is not None
    conn: http.client.HTTPConnection
    if issuer is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        keypair = issuer.issue_keypair(SpiffeId.parse(CALLER_ID))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # we test the server's check of us, not ours of it
        with tempfile.TemporaryDirectory() as d:
            cert, key = Path(d) / "cert.pem", Path(d) / "key.pem"
            cert.write_bytes(keypair.chain_pem)
            key.write_bytes(keypair.private_key_pem)
            ctx.load_cert_chain(cert, key)
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=ctx)
    try:
        conn.request("GET", "/", headers={"host": "backend"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def _mesh_ca(m: RunningMesh) -> Issuer:
    return store.load_issuer(m.builder.state_dir / "ca" / "test.local", "test.local")


def test_the_upstream_app_sees_the_callers_spiffe_id_over_mtls(mesh: LocalMeshBuilder) -> None:
    _mesh(mesh)
    with mesh.run() as m:
        resp = m.get("caller", "backend", "/")
        assert resp.status == 200
        assert f"URI={CALLER_ID}" in resp.json()["client_cert"]
        assert m.stats("backend-1", "ssl.handshake")  # the hop was TLS, counted by the server side


def test_strict_refuses_plaintext_and_certificates_of_another_ca(mesh: LocalMeshBuilder) -> None:
    _mesh(mesh)
    with mesh.run() as m:
        # Control: a certificate of the mesh CA is accepted, and the app sees exactly that identity.
        status, body = _direct(m, issuer=_mesh_ca(m))
        assert status == 200 and body["client_cert"].endswith(f";URI={CALLER_ID}")
        with pytest.raises(REFUSED):
            _direct(m)
        with pytest.raises(REFUSED):
            _direct(m, issuer=create_root("test.local"))  # same trust domain and SPIFFE ID, wrong CA


def test_permissive_accepts_plaintext_and_mtls_and_warns(mesh: LocalMeshBuilder) -> None:
    _mesh(mesh)
    mesh.mesh(mtls={"mode": "Permissive"})
    with mesh.run() as m:
        assert "Permissive accepts plaintext from outside the mesh" in m.log()
        status, body = _direct(m)
        assert (status, body["client_cert"]) == (200, "")  # plaintext: no identity
        resp = m.get("caller", "backend", "/")
        assert resp.status == 200 and f"URI={CALLER_ID}" in resp.json()["client_cert"]
        with pytest.raises(REFUSED):
            _direct(m, issuer=create_root("test.local"))  # TLS is still checked
