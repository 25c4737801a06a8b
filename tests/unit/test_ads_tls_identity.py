"""Over mTLS, the authorize hook sees the client certificate's URI SAN (SPIFFE ID) as the peer identity."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import grpclib.client
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from xds_server.ads import AdsServer, make_server
from xds_server.ads_transport import XdsCodec
from xds_server.cache import SnapshotCache
from xds_server.snapshot import SECRET, Snapshot
from xds_server.sync import SyncTracker
from xds_server.testing.fake_client import FakeAdsClient
from xds_server.testing.resources import generic_secret

pytestmark = pytest.mark.timeout(30)


def _cert(
    subject: str,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    issuer: x509.Name | None,
    *,
    ca: bool,
    san: x509.GeneralName | None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san is not None:
        b = b.add_extension(x509.SubjectAlternativeName([san]), critical=False)
    return b.sign(issuer_key or key, hashes.SHA256()), key


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    c, k = path.with_suffix(".crt"), path.with_suffix(".key")
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(c), str(k)


async def test_authorize_sees_the_spiffe_id_of_the_client_certificate(tmp_path: Path):
    ca, ca_key = _cert("test-ca", None, None, ca=True, san=None)
    server_cert, server_key = _cert("xds", ca_key, ca.subject, ca=False, san=x509.DNSName("localhost"))
    spiffe = "spiffe://cluster.local/ns/shop/sa/cart"
    client_cert, client_key = _cert("cart", ca_key, ca.subject, ca=False, san=x509.UniformResourceIdentifier(spiffe))
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_file))
    server_ctx.load_cert_chain(*_write(tmp_path / "server", server_cert, server_key))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.set_alpn_protocols(["h2"])
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    client_ctx.load_cert_chain(*_write(tmp_path / "client", client_cert, client_key))
    client_ctx.set_alpn_protocols(["h2"])

    seen: list[tuple[str, str | None, str, str]] = []

    def authorize(node_id: str, peer: str | None, type_url: str, name: str) -> bool:
        seen.append((node_id, peer, type_url, name))
        return peer == spiffe and name == "cart-key"

    cache = SnapshotCache(ready=True)
    cache.set_snapshot(
        "cart-1", Snapshot.from_resources([generic_secret("cart-key", "a"), generic_secret("db-key", "b")])
    )
    sync = SyncTracker()
    server = make_server(AdsServer(cache, sync, authorize=authorize))
    await server.start("127.0.0.1", 0, ssl=server_ctx)
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    channel = grpclib.client.Channel("localhost", port, ssl=client_ctx, codec=XdsCodec())
    try:
        async with FakeAdsClient(channel, "cart-1", delta=True) as c:
            await c.send_delta(SECRET, ["cart-key", "db-key"])
            r = await c.recv()
            assert r.names == ["cart-key"]
        assert ("cart-1", spiffe, SECRET, "db-key") in seen
    finally:
        channel.close()
        server.close()
        await server.wait_closed()
