"""SDS never hands a secret to a proxy of another identity (CVE-2021-34824), checked on the wire: a real
``ControlPlane`` on loopback, mTLS, and an ADS client presenting identity A's certificate. And the staged root
rotation waits for every proxy's ACK of the previous step's SDS material."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpclib.client
import pytest
from cryptography import x509

from mesh_operator.control import CertificateManager, ControlPlane
from mesh_operator.loader import load_paths
from mesh_operator.testing.localmesh import LocalMeshBuilder
from xds_server.ads_transport import XdsCodec
from xds_server.ca import Issuer, RotationPhase, SpiffeId, store
from xds_server.errors import RotationStepRefused
from xds_server.snapshot import CLUSTER, LISTENER, SECRET
from xds_server.testing.fake_client import FakeAdsClient, FakeResponse

pytestmark = pytest.mark.timeout(60)

A_ID, B_ID = "spiffe://test.local/ns/default/sa/a", "spiffe://test.local/ns/default/sa/b"
A_NODE, B_NODE = "default/a-1", "default/b-1"


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    builder = LocalMeshBuilder(tmp_path)
    builder.service("a")
    builder.service("b")
    builder.write()
    issuer = store.load_or_create(tmp_path / "ca", "test.local")
    cp = ControlPlane(CertificateManager(issuer, leaf_ttl=timedelta(hours=1)), ca_dir=tmp_path / "ca")
    await cp.start()
    try:
        cp.apply(load_paths([builder.mesh_dir]).state())
        await cp.wait_translated()
        yield cp
    finally:
        await cp.stop()


def _client_ssl(issuer: Issuer, identity: str, tmp_path: Path) -> ssl.SSLContext:
    keypair = issuer.issue_keypair(SpiffeId.parse(identity))
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_bytes(keypair.chain_pem)
    key.write_bytes(keypair.private_key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # the server's identity is a URI SAN; the chain is still verified
    ctx.load_verify_locations(cadata=issuer.certificate_pem.decode())
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    return ctx


async def _fetch(channel: grpclib.client.Channel, node: str, type_url: str, names: list[str]) -> dict[str, object]:
    """What the server sends ``node`` for one subscription within a second (nothing counts as empty)."""
    async with FakeAdsClient(channel, node) as client:
        await client.request(type_url, names)
        try:
            return (await client.recv(timeout=1.0)).resources
        except TimeoutError:
            return {}


async def test_a_proxy_of_identity_a_gets_its_own_secret_and_nothing_of_node_b(
    plane: ControlPlane, tmp_path: Path
) -> None:
    channel = grpclib.client.Channel(
        "127.0.0.1", plane.xds_port, ssl=_client_ssl(plane.certs.issuer, A_ID, tmp_path), codec=XdsCodec()
    )
    try:
        own = await _fetch(channel, A_NODE, SECRET, ["default", "ROOTCA"])
        assert sorted(own) == ["ROOTCA", "default"]
        chain = own["default"].tls_certificate.certificate_chain.inline_bytes  # type: ignore[attr-defined]
        san = x509.load_pem_x509_certificate(chain).extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [A_ID]

        assert await _fetch(channel, B_NODE, SECRET, ["default", "ROOTCA"]) == {}
        assert await _fetch(channel, B_NODE, LISTENER, []) == {}
        assert await _fetch(channel, B_NODE, CLUSTER, []) == {}
        assert await _fetch(channel, A_NODE, LISTENER, [])  # control: A's own config is served on this channel
    finally:
        channel.close()


async def _until_pending(plane: ControlPlane, nodes: set[str]) -> None:
    for _ in range(100):
        if plane.rotator.pending() == nodes:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"pending: {plane.rotator.pending()}, expected {nodes}")


def _roots(resp: FakeResponse) -> int:
    pem = resp.resources["ROOTCA"].validation_context.trusted_ca.inline_bytes
    return len(x509.load_pem_x509_certificates(pem))


async def test_a_root_rotation_step_waits_for_every_proxy_to_ack_the_previous_one_and_is_saved(
    plane: ControlPlane, tmp_path: Path
) -> None:
    ca_dir = tmp_path / "ca"
    old_root = plane.certs.issuer.root
    channels = [
        grpclib.client.Channel(
            "127.0.0.1", plane.xds_port, ssl=_client_ssl(plane.certs.issuer, ident, tmp_path), codec=XdsCodec()
        )
        for ident in (A_ID, B_ID)
    ]
    try:
        async with FakeAdsClient(channels[0], A_NODE) as a, FakeAdsClient(channels[1], B_NODE) as b:
            for proxy in (a, b):
                await proxy.request(SECRET, ["default", "ROOTCA"])
                await proxy.ack(await proxy.recv())
            await _until_pending(plane, set())
            await plane.rotator.advance()
            updates = [await a.recv(), await b.recv()]
            assert [_roots(u) for u in updates] == [2, 2]  # old + new
            await a.ack(updates[0])
            await _until_pending(plane, {B_NODE})
            with pytest.raises(RotationStepRefused, match=f"1 proxy has not yet received .*{B_NODE}"):
                await plane.rotator.advance()
            await b.ack(updates[1])
            await _until_pending(plane, set())
            await plane.rotator.advance()
        saved = store.load_rotation(ca_dir)
        assert saved is not None and saved.phase is RotationPhase.ISSUER_SWITCHED
        issuer = store.load_issuer(ca_dir, "test.local")
        assert issuer.root == saved.new_root != old_root
        restarted = ControlPlane(CertificateManager(issuer, leaf_ttl=timedelta(hours=1)), ca_dir=ca_dir)
        assert restarted.rotator.rotation == saved and len(restarted.certs.bundle) == 2
    finally:
        for channel in channels:
            channel.close()
