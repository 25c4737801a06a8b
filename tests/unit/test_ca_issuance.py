"""Issuance rules for X.509 SVIDs (ANCHORS 8 and 10): every leaf is checked by parsing it back with cryptography."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xds_server.ca import (
    IssuancePolicy,
    IssuedCertificate,
    Issuer,
    KeyAlgorithm,
    SpiffeId,
    create_intermediate,
    create_root,
)
from xds_server.errors import CertificateError, InvalidRequest, IssuerExpired, IssuerNotYetValid

T0 = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
TRUST_DOMAIN = "mesh.example"
ROOT = create_root(TRUST_DOMAIN, now=T0)
INTERMEDIATE = create_intermediate(ROOT, now=T0, ttl=timedelta(days=180))
WEB = SpiffeId(TRUST_DOMAIN, "shop", "web")

dns_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
identities = st.builds(SpiffeId, st.just(TRUST_DOMAIN), dns_label, dns_label)
ttls = st.integers(min_value=1, max_value=30 * 86400).map(lambda s: timedelta(seconds=s))
# Anywhere in the intermediate's life, including its last hours, where the clamp matters.
issue_times = st.datetimes(
    min_value=T0.replace(tzinfo=None),
    max_value=(INTERMEDIATE.not_after - IssuancePolicy().min_issuer_remaining).replace(tzinfo=None),
    timezones=st.just(UTC),
)
issuers = st.sampled_from([ROOT, INTERMEDIATE])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def csr_for(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, *uris: str) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if uris:
        names = [x509.UniformResourceIdentifier(u) for u in uris]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def assert_meets_svid_rules(
    issued: IssuedCertificate, issuer: Issuer, identity: SpiffeId, now: datetime, ttl: timedelta
) -> None:
    cert = x509.load_pem_x509_certificate(issued.certificate_pem)  # parse back what we would serve
    ext = cert.extensions
    # Exactly one SAN, a URI equal to the SPIFFE ID; critical because the subject is empty.
    san = ext.get_extension_for_class(x509.SubjectAlternativeName)
    assert list(san.value) == [x509.UniformResourceIdentifier(identity.uri)]
    assert san.critical
    assert cert.subject == x509.Name([])
    # CA:false, critical.
    bc = ext.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca is False
    # Key usage: digitalSignature, plus keyEncipherment only for RSA keys; nothing else.
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert ku.value.key_encipherment == isinstance(cert.public_key(), rsa.RSAPublicKey)
    others = (ku.value.key_cert_sign, ku.value.crl_sign, ku.value.content_commitment)
    assert others == (False, False, False)
    assert (ku.value.data_encipherment, ku.value.key_agreement) == (False, False)
    # EKU: serverAuth + clientAuth.
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    # Serial: random, positive, at most 159 bits.
    assert 0 < cert.serial_number < 2**159
    # Validity: backdated by 20 s (not before the chain is valid), never outliving any certificate above.
    assert cert.not_valid_before_utc == max(now.replace(microsecond=0) - timedelta(seconds=20), issuer.not_before)
    assert cert.not_valid_after_utc == min(now.replace(microsecond=0) + ttl, issuer.not_after)
    for above in (issuer.certificate, *issuer.chain):
        assert cert.not_valid_after_utc <= above.not_valid_after_utc
    # Signed by the issuer, and the whole path verifies up to the root.
    assert cert.issuer == issuer.certificate.subject
    cert.verify_directly_issued_by(issuer.certificate)
    verifier = PolicyBuilder().store(Store([issuer.root])).time(now).build_client_verifier()
    verified = verifier.verify(cert, list(issued.intermediates))
    assert verified.chain[-1] == issuer.root
    assert verified.subjects == [x509.UniformResourceIdentifier(identity.uri)]


@SLOW
@given(issuer=issuers, identity=identities, ttl=ttls, now=issue_times)
def test_every_keypair_issued_meets_the_svid_rules(
    issuer: Issuer, identity: SpiffeId, ttl: timedelta, now: datetime
) -> None:
    issued = issuer.issue_keypair(identity, ttl=ttl, now=now)
    assert_meets_svid_rules(issued, issuer, identity, now, ttl)
    assert issued.private_key.public_key() == issued.certificate.public_key()


@SLOW
@given(issuer=issuers, identity=identities, ttl=ttls, now=issue_times, curve=st.sampled_from([256, 384]))
def test_every_signed_csr_meets_the_svid_rules(
    issuer: Issuer, identity: SpiffeId, ttl: timedelta, now: datetime, curve: int
) -> None:
    key = ec.generate_private_key(ec.SECP256R1() if curve == 256 else ec.SECP384R1())
    issued = issuer.sign_csr(csr_for(key, identity.uri), identity, ttl=ttl, now=now)
    assert_meets_svid_rules(issued, issuer, identity, now, ttl)
    assert issued.certificate.public_key() == key.public_key()


def test_an_rsa_leaf_also_gets_key_encipherment() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issued = ROOT.sign_csr(csr_for(key, WEB.uri), WEB, now=T0)
    assert_meets_svid_rules(issued, ROOT, WEB, T0, timedelta(hours=24))


def test_the_default_leaf_lives_24_hours_and_is_backdated_20_seconds() -> None:
    issued = ROOT.issue_keypair(WEB, now=T0)
    assert issued.not_before == T0 - timedelta(seconds=20)
    assert issued.not_after == T0 + timedelta(hours=24)


def test_a_leaf_never_outlives_its_issuer() -> None:
    short = create_intermediate(ROOT, now=T0, ttl=timedelta(hours=5))
    issued = short.issue_keypair(WEB, now=T0 + timedelta(hours=2))
    assert issued.not_after == short.not_after == T0 + timedelta(hours=5)


def test_a_leaf_never_outlives_the_root_above_its_intermediate() -> None:
    root = create_root(TRUST_DOMAIN, now=T0, ttl=timedelta(days=10))
    # The intermediate is itself clamped to the root; the leaf to both.
    inter = create_intermediate(root, now=T0, ttl=timedelta(days=365))
    assert inter.certificate.not_valid_after_utc == root.not_after
    issued = inter.issue_keypair(WEB, now=root.not_after - timedelta(hours=3))
    assert issued.not_after == root.not_after


def test_serial_numbers_are_random() -> None:
    serials = {ROOT.issue_keypair(WEB, now=T0).serial_number for _ in range(20)}
    assert len(serials) == 20


def test_signing_with_an_expired_issuer_is_refused_with_a_clear_message() -> None:
    short = create_intermediate(ROOT, now=T0, ttl=timedelta(days=1))
    with pytest.raises(IssuerExpired, match=r"refusing to sign: the issuer certificate .* expired at 2031-03-02"):
        short.issue_keypair(WEB, now=T0 + timedelta(days=2))
    with pytest.raises(IssuerExpired, match="expired"):
        short.sign_csr(csr_for(ec.generate_private_key(ec.SECP256R1()), WEB.uri), WEB, now=T0 + timedelta(days=1))


def test_signing_under_an_expired_root_is_refused() -> None:
    root = create_root(TRUST_DOMAIN, now=T0, ttl=timedelta(days=2))
    inter = create_intermediate(root, now=T0)  # clamped to the root's life
    with pytest.raises(IssuerExpired, match="expired at 2031-03-03T12:00:00Z"):
        inter.issue_keypair(WEB, now=T0 + timedelta(days=3))


def test_signing_with_an_issuer_close_to_expiry_is_refused() -> None:
    policy = IssuancePolicy(min_issuer_remaining=timedelta(hours=6))
    root = create_root(TRUST_DOMAIN, now=T0, ttl=timedelta(days=1), policy=policy)
    root.issue_keypair(WEB, now=T0 + timedelta(hours=17, minutes=59))  # 6 h 1 min left: fine
    with pytest.raises(IssuerExpired, match=r"only 5:00:00 from now \(the minimum is 6:00:00\)"):
        root.issue_keypair(WEB, now=T0 + timedelta(hours=19))


def test_signing_with_an_issuer_not_yet_valid_is_refused() -> None:
    with pytest.raises(IssuerNotYetValid, match="clock skew"):
        ROOT.issue_keypair(WEB, now=T0 - timedelta(hours=1))


def test_the_clock_is_injectable() -> None:
    clock_root = create_root(TRUST_DOMAIN, now=T0, clock=lambda: T0 + timedelta(days=1))
    assert clock_root.issue_keypair(WEB).not_before == T0 + timedelta(days=1, seconds=-20)


def test_naive_times_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ROOT.issue_keypair(WEB, now=datetime(2031, 3, 2))


@pytest.mark.parametrize(
    ("ttl", "message"),
    [
        (timedelta(0), "at least one second"),
        (timedelta(milliseconds=999), "at least one second"),
        (timedelta(seconds=-1), "at least one second"),
        (timedelta(days=31), "exceeds the maximum"),
    ],
)
def test_a_bad_lifetime_is_an_invalid_request(ttl: timedelta, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        ROOT.issue_keypair(WEB, ttl=ttl, now=T0)


def test_an_identity_of_another_trust_domain_is_refused() -> None:
    other = SpiffeId("other.example", "shop", "web")
    with pytest.raises(InvalidRequest, match=r"outside this CA's trust domain 'mesh\.example'"):
        ROOT.issue_keypair(other, now=T0)
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InvalidRequest, match="outside"):
        ROOT.sign_csr(csr_for(key, other.uri), other, now=T0)


def test_keypairs_of_each_algorithm_can_be_issued() -> None:
    for algorithm in (KeyAlgorithm.EC_P256, KeyAlgorithm.EC_P384, KeyAlgorithm.RSA_2048):
        issued = INTERMEDIATE.issue_keypair(WEB, key_algorithm=algorithm, now=T0)
        assert_meets_svid_rules(issued, INTERMEDIATE, WEB, T0, timedelta(hours=24))


def test_an_intermediate_chain_verifies_up_to_the_root() -> None:
    second = create_intermediate(create_intermediate(ROOT, now=T0, path_length=1), now=T0)
    issued = second.issue_keypair(WEB, now=T0)
    path = [issued.certificate, *issued.intermediates, second.root]
    assert len(path) == 4
    assert second.root == ROOT.certificate
    for child, parent in itertools.pairwise(path):
        child.verify_directly_issued_by(parent)
    ROOT.certificate.verify_directly_issued_by(ROOT.certificate)  # self-signed
    assert_meets_svid_rules(issued, second, WEB, T0, timedelta(hours=24))


def test_the_root_is_a_ten_year_p256_ca() -> None:
    cert = ROOT.certificate
    assert cert.not_valid_after_utc - T0 == timedelta(days=3650)
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ROOT.is_root
    assert ROOT.intermediates == ()


def test_every_issuance_error_is_a_certificate_error() -> None:
    for error in (IssuerExpired, IssuerNotYetValid, InvalidRequest):
        assert issubclass(error, CertificateError)
