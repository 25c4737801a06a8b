"""Root creation and user-supplied CAs (a root, or an intermediate with its chain): checked before use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from xds_server.ca import SpiffeId, certificate_pem, create_intermediate, create_root, issuer_from_pem
from xds_server.ca.keys import private_key_pem
from xds_server.errors import InvalidCaMaterial, IssuerExpired

T0 = datetime(2031, 3, 1, tzinfo=UTC)
TD = "mesh.example"
WEB = SpiffeId(TD, "shop", "web")
ROOT = create_root(TD, now=T0)
INTER = create_intermediate(ROOT, now=T0)


def hand_made_ca(
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    days: int = 365,
    path_length: int | None = None,
    ca: bool = True,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A CA the way a user's own tooling might make it (no help from our code)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - timedelta(days=1))
        .not_valid_after(T0 + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .sign(signing_key, hashes.SHA256())
    )
    return cert, key


def load(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, *chain: x509.Certificate):  # type: ignore[no-untyped-def]
    return issuer_from_pem(
        certificate_pem(cert), private_key_pem(key), certificate_pem(*chain) if chain else None, trust_domain=TD
    )


def test_a_user_supplied_root_loads_and_issues() -> None:
    issuer = issuer_from_pem(ROOT.certificate_pem, private_key_pem(ROOT.key), trust_domain=TD)
    assert issuer.is_root
    assert issuer.root == ROOT.certificate
    issuer.issue_keypair(WEB, now=T0).certificate.verify_directly_issued_by(ROOT.certificate)


def test_a_user_supplied_intermediate_with_its_chain_knows_its_root() -> None:
    issuer = issuer_from_pem(INTER.certificate_pem, private_key_pem(INTER.key), ROOT.certificate_pem, trust_domain=TD)
    assert issuer.chain == (ROOT.certificate,)
    assert issuer.root == ROOT.certificate
    leaf = issuer.issue_keypair(WEB, now=T0)
    assert leaf.intermediates == (INTER.certificate,)
    leaf.certificate.verify_directly_issued_by(INTER.certificate)
    INTER.certificate.verify_directly_issued_by(ROOT.certificate)


def test_the_chain_may_come_in_the_certificate_file_and_may_repeat_the_issuer() -> None:
    in_cert_file = issuer_from_pem(INTER.chain_pem, private_key_pem(INTER.key), trust_domain=TD)
    repeated = issuer_from_pem(INTER.certificate_pem, private_key_pem(INTER.key), INTER.chain_pem, trust_domain=TD)
    assert in_cert_file.chain == repeated.chain == (ROOT.certificate,)


def test_a_hand_made_intermediate_chain_of_two_levels_loads() -> None:
    root = hand_made_ca("root", None)
    mid = hand_made_ca("mid", root, path_length=1)
    low = hand_made_ca("low", mid, path_length=0)
    issuer = load(*low, mid[0], root[0])
    leaf = issuer.issue_keypair(WEB, now=T0)
    for child, parent in [(leaf.certificate, low[0]), (low[0], mid[0]), (mid[0], root[0])]:
        child.verify_directly_issued_by(parent)


def test_an_intermediate_without_its_root_is_refused() -> None:
    with pytest.raises(InvalidCaMaterial, match="does not end at a self-signed root"):
        issuer_from_pem(INTER.certificate_pem, private_key_pem(INTER.key), trust_domain=TD)


def test_a_key_that_does_not_match_the_certificate_is_refused() -> None:
    with pytest.raises(InvalidCaMaterial, match="does not belong to the CA certificate"):
        issuer_from_pem(ROOT.certificate_pem, private_key_pem(INTER.key), trust_domain=TD)


def test_a_chain_that_does_not_link_up_is_refused() -> None:
    other_root = create_root(TD, now=T0)
    with pytest.raises(InvalidCaMaterial, match="the chain is broken"):
        issuer_from_pem(INTER.certificate_pem, private_key_pem(INTER.key), other_root.certificate_pem, trust_domain=TD)


def test_a_certificate_that_is_not_a_ca_is_refused() -> None:
    cert, key = hand_made_ca("not a ca", None, ca=False)
    with pytest.raises(InvalidCaMaterial, match=r"is not a CA certificate \(CA:false\)"):
        load(cert, key)


def test_a_path_length_constraint_is_enforced() -> None:
    root = hand_made_ca("root", None, path_length=0)
    mid = hand_made_ca("mid", root)
    with pytest.raises(InvalidCaMaterial, match="allows 0 intermediate CA"):
        load(*mid, root[0])
    with pytest.raises(InvalidCaMaterial, match="allows 0 intermediate CA"):
        create_intermediate(load(*root), now=T0)


@pytest.mark.parametrize(
    ("cert_pem", "key_pem", "message"),
    [
        (b"junk", private_key_pem(ROOT.key), "CA certificate: not PEM certificates"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", b"", "not PEM certificates"),
        (ROOT.certificate_pem, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "CA private key"),
        (ROOT.certificate_pem, b"", "CA private key: not an unencrypted PEM private key"),
    ],
)
def test_malformed_material_is_refused_clearly(cert_pem: bytes, key_pem: bytes, message: str) -> None:
    with pytest.raises(InvalidCaMaterial, match=message):
        issuer_from_pem(cert_pem, key_pem, trust_domain=TD)


def test_an_invalid_trust_domain_is_refused() -> None:
    with pytest.raises(InvalidCaMaterial, match="trust domain"):
        issuer_from_pem(ROOT.certificate_pem, private_key_pem(ROOT.key), trust_domain="Not Valid")


def test_an_expired_user_ca_loads_but_cannot_sign() -> None:
    issuer = issuer_from_pem(ROOT.certificate_pem, private_key_pem(ROOT.key), trust_domain=TD)
    with pytest.raises(IssuerExpired, match="expired"):
        issuer.issue_keypair(WEB, now=T0 + timedelta(days=3651))


def test_an_intermediate_that_outlives_its_root_issues_leaves_clamped_to_the_root() -> None:
    root = hand_made_ca("root", None, days=2)
    mid = hand_made_ca("mid", root, days=365)
    issuer = load(*mid, root[0])
    assert issuer.not_after == root[0].not_valid_after_utc
    leaf = issuer.issue_keypair(WEB, now=T0 + timedelta(hours=36))
    assert leaf.not_after == root[0].not_valid_after_utc
    with pytest.raises(IssuerExpired, match="the root certificate 'CN=root'"):
        issuer.issue_keypair(WEB, now=T0 + timedelta(days=3))


def test_each_root_has_a_distinct_subject_so_two_roots_can_coexist() -> None:
    assert create_root(TD, now=T0).certificate.subject != ROOT.certificate.subject
