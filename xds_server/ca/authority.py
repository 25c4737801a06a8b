"""Making and loading issuers: a self-signed root created on first start, intermediates under it, or a CA the
user supplies (a root, or an intermediate with its chain up to the root) checked before it is used.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from xds_server.ca.clock import Clock, resolve_now, system_clock
from xds_server.ca.identity import validate_trust_domain
from xds_server.ca.issuer import IssuancePolicy, Issuer, authority_key_identifier, random_serial
from xds_server.ca.keys import KeyAlgorithm, PrivateKey, generate_private_key, load_private_key_pem, signature_hash
from xds_server.errors import InvalidCaMaterial, InvalidSpiffeId

__all__ = [
    "DEFAULT_INTERMEDIATE_TTL",
    "DEFAULT_ROOT_TTL",
    "create_intermediate",
    "create_root",
    "issuer_from_pem",
    "load_certificates_pem",
]

DEFAULT_ROOT_TTL = timedelta(days=3650)
DEFAULT_INTERMEDIATE_TTL = timedelta(days=365)

_VERIFY_ERRORS = (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm)
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _ca_name(kind: str) -> x509.Name:
    # A random suffix keeps the subjects of an old and a new root distinct during rotation.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Meshwork"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Meshwork {kind} CA {secrets.token_hex(4)}"),
        ]
    )


def _ca_builder(
    subject: x509.Name,
    issuer_name: x509.Name,
    key: PrivateKey,
    trust_domain: str,
    not_before: datetime,
    not_after: datetime,
    path_length: int | None,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]), critical=False
        )
    )


def create_root(
    trust_domain: str,
    *,
    now: datetime | None = None,
    ttl: timedelta = DEFAULT_ROOT_TTL,
    key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
    policy: IssuancePolicy | None = None,
    clock: Clock = system_clock,
) -> Issuer:
    """A fresh self-signed root CA (10 years, EC P-256 by default) for ``trust_domain``."""
    validate_trust_domain(trust_domain)
    policy = policy or IssuancePolicy()
    now = resolve_now(now, clock)
    key = generate_private_key(key_algorithm)
    name = _ca_name("root")
    builder = _ca_builder(name, name, key, trust_domain, now - policy.backdate, now + ttl, None)
    builder = builder.add_extension(authority_key_identifier_for_key(key), critical=False)
    cert = builder.sign(key, signature_hash(key))
    return Issuer(cert, key, trust_domain, (), policy, clock)


def authority_key_identifier_for_key(key: PrivateKey) -> x509.AuthorityKeyIdentifier:
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def create_intermediate(
    parent: Issuer,
    *,
    now: datetime | None = None,
    ttl: timedelta = DEFAULT_INTERMEDIATE_TTL,
    key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
    path_length: int = 0,
) -> Issuer:
    """An intermediate CA signed by ``parent``; it never outlives the parent's chain."""
    if path_length < 0:
        raise ValueError("path_length must not be negative")
    for depth, above in enumerate((parent.certificate, *parent.chain)):
        _check_ca(above, depth + 1)  # every CA above must allow one more CA below it
    now = parent.check_can_sign(now)
    key = generate_private_key(key_algorithm)
    not_before = max(now - parent.policy.backdate, parent.not_before)
    not_after = min(now + ttl, parent.not_after)
    builder = _ca_builder(
        _ca_name("intermediate"),
        parent.certificate.subject,
        key,
        parent.trust_domain,
        not_before,
        not_after,
        path_length,
    )
    builder = builder.add_extension(authority_key_identifier(parent.certificate), critical=False)
    cert = builder.sign(parent.key, signature_hash(parent.key))
    return Issuer(cert, key, parent.trust_domain, (parent.certificate, *parent.chain), parent.policy, parent.clock)


def load_certificates_pem(data: bytes, what: str) -> list[x509.Certificate]:
    """Every certificate in a PEM blob; `InvalidCaMaterial` naming ``what`` if there is none or it is malformed."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise InvalidCaMaterial(f"{what}: not PEM certificates ({exc})") from None
    if not certs:
        raise InvalidCaMaterial(f"{what}: no certificate found")
    return certs


def _describe(cert: x509.Certificate) -> str:
    return f"{cert.subject.rfc4514_string() or '<empty subject>'} (serial {cert.serial_number:x})"


def _check_ca(cert: x509.Certificate, below: int) -> None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise InvalidCaMaterial(f"{_describe(cert)} is not a CA certificate (no basic constraints)") from None
    if not bc.ca:
        raise InvalidCaMaterial(f"{_describe(cert)} is not a CA certificate (CA:false)")
    if bc.path_length is not None and bc.path_length < below:
        raise InvalidCaMaterial(
            f"{_describe(cert)} allows {bc.path_length} intermediate CA(s) below it, but {below} would follow"
        )
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not ku.key_cert_sign:
        raise InvalidCaMaterial(f"{_describe(cert)} has a key usage without keyCertSign")


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except _VERIFY_ERRORS:
        return False
    return True


def issuer_from_pem(
    certificate_pem: bytes,
    key_pem: bytes,
    chain_pem: bytes | None = None,
    *,
    trust_domain: str,
    policy: IssuancePolicy | None = None,
    clock: Clock = system_clock,
) -> Issuer:
    """A user-supplied CA: a root, or an intermediate whose chain (in ``certificate_pem`` after the first
    certificate, or in ``chain_pem``) leads to a self-signed root. Everything is checked: the key matches, each
    link's signature verifies, every certificate is a CA allowed to sign at its depth. Expired material loads
    (so `meshctl certs status` can show it) but cannot sign.
    """
    try:
        validate_trust_domain(trust_domain)
    except InvalidSpiffeId as exc:
        raise InvalidCaMaterial(str(exc)) from None
    certs = load_certificates_pem(certificate_pem, "CA certificate")
    if chain_pem:
        certs += load_certificates_pem(chain_pem, "CA chain")
    # A chain file may repeat the issuer certificate first; drop exact duplicates, keeping order.
    path: list[x509.Certificate] = []
    for cert in certs:
        if cert not in path:
            path.append(cert)
    try:
        key = load_private_key_pem(key_pem)
    except ValueError as exc:
        raise InvalidCaMaterial(f"CA private key: {exc}") from None
    if key.public_key() != path[0].public_key():
        raise InvalidCaMaterial(f"the CA private key does not belong to the CA certificate {_describe(path[0])}")
    if not isinstance(path[0].public_key(), ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise InvalidCaMaterial("the CA key must be EC or RSA")
    for depth, cert in enumerate(path):
        _check_ca(cert, depth)
        if depth + 1 < len(path):
            parent = path[depth + 1]
            try:
                cert.verify_directly_issued_by(parent)
            except _VERIFY_ERRORS:
                raise InvalidCaMaterial(
                    f"the chain is broken: {_describe(cert)} is not signed by the next certificate {_describe(parent)}"
                ) from None
    if not _self_signed(path[-1]):
        raise InvalidCaMaterial(
            f"the chain of {_describe(path[0])} does not end at a self-signed root (it ends at {_describe(path[-1])});"
            " supply the intermediates and the root as the chain"
        )
    return Issuer(path[0], key, trust_domain, tuple(path[1:]), policy or IssuancePolicy(), clock)
