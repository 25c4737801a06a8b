"""Real TLS handshakes on 127.0.0.1 with Python's ssl module: leaves from our CA authenticate both ways against
the trust bundle; a client holding a certificate from another CA is refused."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from xds_server.ca import IssuedKeypair, SpiffeId, TrustBundle, create_intermediate, create_root

TD = "mesh.example"
SERVER_ID = SpiffeId(TD, "shop", "api")
CLIENT_ID = SpiffeId(TD, "shop", "web")


def context(purpose: ssl.Purpose, identity: IssuedKeypair, bundle: TrustBundle, tmp_path: Path) -> ssl.SSLContext:
    chain, key = tmp_path / f"{purpose}-{identity.serial_number}.pem", tmp_path / f"{identity.serial_number}.key"
    chain.write_bytes(identity.chain_pem)
    key.touch(mode=0o600)
    key.write_bytes(identity.private_key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if purpose == ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # peers are identified by their URI SAN, checked below
    ctx.verify_mode = ssl.CERT_REQUIRED  # on the server side: mTLS, a client certificate is required
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_verify_locations(cadata=bundle.to_pem().decode())
    ctx.load_cert_chain(chain, key)
    return ctx


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[object, object]:
    """Run one exchange; return (what the server saw, what the client saw): a peer URI or the exception."""
    seen: dict[str, object] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with server.wrap_socket(conn, server_side=True) as tls:
                    seen["server"] = dict(tls.getpeercert()["subjectAltName"])["URI"]  # type: ignore[arg-type,index]
                    tls.sendall(tls.recv(4).upper())
            except (ssl.SSLError, OSError) as exc:
                seen["server"] = exc

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with (
                socket.create_connection(listener.getsockname(), timeout=5) as raw,
                client.wrap_socket(raw) as tls,
            ):
                tls.sendall(b"ping")
                assert tls.recv(4) == b"PING"
                seen["client"] = dict(tls.getpeercert()["subjectAltName"])["URI"]  # type: ignore[arg-type,index]
        except (ssl.SSLError, OSError, AssertionError) as exc:
            seen["client"] = exc
        thread.join(10)
    return seen["server"], seen["client"]


def test_server_and_client_leaves_authenticate_each_other_through_an_intermediate(tmp_path: Path) -> None:
    root = create_root(TD)
    issuer = create_intermediate(root)
    bundle = TrustBundle.of(root.root)
    server = context(ssl.Purpose.CLIENT_AUTH, issuer.issue_keypair(SERVER_ID), bundle, tmp_path)
    client = context(ssl.Purpose.SERVER_AUTH, issuer.issue_keypair(CLIENT_ID), bundle, tmp_path)
    assert handshake(server, client) == (CLIENT_ID.uri, SERVER_ID.uri)


def test_a_client_with_a_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    root, stranger = create_root(TD), create_root(TD)
    bundle = TrustBundle.of(root.root)
    server = context(ssl.Purpose.CLIENT_AUTH, root.issue_keypair(SERVER_ID), bundle, tmp_path)
    # The intruder trusts our root (so it would accept the server), but its own leaf is from another CA.
    client = context(ssl.Purpose.SERVER_AUTH, stranger.issue_keypair(CLIENT_ID), bundle, tmp_path)
    seen_by_server, seen_by_client = handshake(server, client)
    assert isinstance(seen_by_server, ssl.SSLError)
    assert "certificate verify failed" in str(seen_by_server)
    assert isinstance(seen_by_client, ssl.SSLError | OSError | AssertionError)


@pytest.mark.parametrize("server_root_is_new", [False, True])
def test_during_a_rotation_leaves_of_the_old_and_new_roots_interoperate(
    tmp_path: Path, server_root_is_new: bool
) -> None:
    old, new = create_root(TD), create_root(TD)
    bundle = TrustBundle.of(old.root, new.root)
    server_issuer, client_issuer = (new, old) if server_root_is_new else (old, new)
    server = context(ssl.Purpose.CLIENT_AUTH, server_issuer.issue_keypair(SERVER_ID), bundle, tmp_path)
    client = context(ssl.Purpose.SERVER_AUTH, client_issuer.issue_keypair(CLIENT_ID), bundle, tmp_path)
    assert handshake(server, client) == (CLIENT_ID.uri, SERVER_ID.uri)
