"""CSR validation (ANCHORS 10 and 14): every malformed or rule-breaking CSR is refused with `InvalidRequest`;
arbitrary bytes never raise anything else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtensionOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xds_server.ca import SpiffeId, create_root, load_csr, validate_csr
from xds_server.ca.csr import MAX_CSR_BYTES
from xds_server.errors import InvalidRequest

T0 = datetime(2031, 3, 1, tzinfo=UTC)
ROOT = create_root("mesh.example", now=T0)
WEB = SpiffeId("mesh.example", "shop", "web")
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def make_csr(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = EC_KEY,
    names: list[x509.GeneralName] | None = None,
    *,
    subject: str | None = None,
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]) if subject else x509.Name([])
    )
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def der(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.DER)


GOOD = make_csr(names=[x509.UniformResourceIdentifier(WEB.uri)])
GOOD_DER = der(GOOD)
GOOD_PEM = GOOD.public_bytes(serialization.Encoding.PEM)


def test_a_good_csr_is_accepted_as_pem_der_text_or_object() -> None:
    for form in (GOOD_PEM, GOOD_DER, GOOD_PEM.decode(), GOOD, b"\n  " + GOOD_PEM):
        assert validate_csr(form, WEB) == EC_KEY.public_key()


def test_the_subject_and_other_csr_content_are_ignored() -> None:
    csr = make_csr(names=[x509.UniformResourceIdentifier(WEB.uri)], subject="admin")
    issued = ROOT.sign_csr(csr, WEB, now=T0)
    assert issued.certificate.subject == x509.Name([])


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (None, "no subject alternative name"),
        ([], "0 subject alternative names"),
        (
            [x509.UniformResourceIdentifier(WEB.uri), x509.DNSName("web.shop.svc")],
            "2 subject alternative names; it must hold exactly one",
        ),
        (
            [x509.UniformResourceIdentifier(WEB.uri), x509.UniformResourceIdentifier(WEB.uri)],
            "2 subject alternative names",
        ),
        ([x509.DNSName("web.shop.svc")], "is a DNSName, not the URI spiffe://mesh.example/ns/shop/sa/web"),
        (
            [x509.UniformResourceIdentifier("spiffe://mesh.example/ns/kube-system/sa/admin")],
            "asks for 'spiffe://mesh.example/ns/kube-system/sa/admin' but the requester's identity is "
            "spiffe://mesh.example/ns/shop/sa/web",
        ),
    ],
)
def test_a_csr_must_ask_for_exactly_the_requesters_uri(names: list[x509.GeneralName] | None, message: str) -> None:
    csr = make_csr(names=names)
    with pytest.raises(InvalidRequest, match=message):
        ROOT.sign_csr(der(csr), WEB, now=T0)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=1024), "RSA key of 1024 bits is not accepted"),
        (ec.generate_private_key(ec.SECP521R1()), "EC curve secp521r1 is not accepted"),
        (ed25519.Ed25519PrivateKey.generate(), "Ed25519PublicKey keys are not accepted"),
    ],
)
def test_weak_or_unsupported_keys_are_refused(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        ROOT.sign_csr(der(make_csr(key, [x509.UniformResourceIdentifier(WEB.uri)])), WEB, now=T0)


def test_a_csr_with_a_bad_signature_is_refused() -> None:
    tampered = bytearray(GOOD_DER)
    tampered[-1] ^= 0x01  # the last byte of the ECDSA signature's s value
    with pytest.raises(InvalidRequest, match="signature does not verify"):
        validate_csr(bytes(tampered), WEB)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x00" * (MAX_CSR_BYTES + 1), "at most 65536"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n", "PEM"),
        (b"garbage", "does not parse as DER"),
        ("caf\u00e9", "not ASCII"),
        (ROOT.certificate_pem, "does not parse as PEM"),
    ],
)
def test_malformed_csrs_are_refused(data: bytes | str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        load_csr(data)


def test_a_csr_that_is_not_bytes_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="must be bytes, got int"):
        validate_csr(12, WEB)  # type: ignore[arg-type]


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sign_or_refuse(data: bytes) -> None:
    try:
        ROOT.sign_csr(data, WEB, now=T0)
    except InvalidRequest:
        return


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_are_refused_with_invalid_request_only(data: bytes) -> None:
    sign_or_refuse(data)


@FUZZ
@given(st.data())
def test_mutated_csrs_are_refused_with_invalid_request_only(data: st.DataObject) -> None:
    blob = bytearray(GOOD_DER)
    for _ in range(data.draw(st.integers(1, 8))):
        index = data.draw(st.integers(0, len(blob) - 1))
        action = data.draw(st.sampled_from(["flip", "set", "delete", "insert"]))
        if action == "flip":
            blob[index] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "set":
            blob[index] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del blob[index]
        else:
            blob.insert(index, data.draw(st.integers(0, 255)))
        if not blob:
            break
    sign_or_refuse(bytes(blob))


@FUZZ
@given(st.integers(0, len(GOOD_DER) - 1))
def test_truncated_csrs_are_refused(length: int) -> None:
    with pytest.raises(InvalidRequest):
        ROOT.sign_csr(GOOD_DER[:length], WEB, now=T0)


@FUZZ
@given(st.text(max_size=500))
def test_random_pem_bodies_are_refused_with_invalid_request_only(body: str) -> None:
    pem = f"-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(InvalidRequest):
        ROOT.sign_csr(pem, WEB, now=T0)


@FUZZ
@given(st.lists(st.text(st.characters(codec="ascii"), max_size=80), max_size=3))
def test_csrs_asking_for_arbitrary_uris_are_refused_unless_exactly_the_identity(uris: list[str]) -> None:
    try:
        csr = make_csr(names=[x509.UniformResourceIdentifier(u) for u in uris])
    except ValueError:
        return  # cryptography will not even build it
    if uris == [WEB.uri]:
        ROOT.sign_csr(csr, WEB, now=T0)
        return
    with pytest.raises(InvalidRequest):
        ROOT.sign_csr(der(csr), WEB, now=T0)


def signed_with_raw_extensions(*values: bytes) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    for value in values:
        ext = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, value)
        builder = builder.add_extension(ext, critical=False)
    return der(builder.sign(EC_KEY, hashes.SHA256()))


@FUZZ
@given(st.binary(max_size=200))
def test_validly_signed_csrs_with_garbage_san_bytes_are_refused(value: bytes) -> None:
    # The signature verifies, so the parser of the extension itself is what the garbage reaches.
    with pytest.raises(InvalidRequest):
        ROOT.sign_csr(signed_with_raw_extensions(value), WEB, now=T0)


def test_a_uri_san_that_is_not_ia5_text_is_refused() -> None:
    # SEQUENCE { [6] IMPLICIT IA5String "\xff..." }: a URI with a byte outside ASCII.
    with pytest.raises(InvalidRequest):
        ROOT.sign_csr(signed_with_raw_extensions(b"\x30\x04\x86\x02\xff\xfe"), WEB, now=T0)


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(body)) + body


def test_a_csr_with_two_san_extensions_is_refused() -> None:
    # cryptography refuses to build this, so build it with a look-alike OID (issuerAltName, 2.5.29.18), patch the
    # OID into subjectAltName (2.5.29.17) and sign the patched request again.
    value = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(WEB.uri)])
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    builder = builder.add_extension(value, critical=False)
    builder = builder.add_extension(
        x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.18"), value.public_bytes()), critical=False
    )
    original = der(builder.sign(EC_KEY, hashes.SHA256()))
    info = builder.sign(EC_KEY, hashes.SHA256()).tbs_certrequest_bytes
    patched = info.replace(b"\x06\x03\x55\x1d\x12", b"\x06\x03\x55\x1d\x11")
    assert patched != info
    algorithm = _tlv(0x30, _tlv(0x06, bytes.fromhex("2a8648ce3d040302")))  # ecdsa-with-SHA256
    assert algorithm in original
    signature = EC_KEY.sign(patched, ec.ECDSA(hashes.SHA256()))
    csr = _tlv(0x30, patched + algorithm + _tlv(0x03, b"\x00" + signature))
    assert x509.load_der_x509_csr(csr).is_signature_valid
    with pytest.raises(InvalidRequest, match="malformed"):
        ROOT.sign_csr(csr, WEB, now=T0)
