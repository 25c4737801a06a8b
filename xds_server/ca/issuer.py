"""The issuer: a CA certificate with its key and its chain up to the root, and the X.509-SVID issuance rules.

Every leaf: exactly one URI SAN (the SPIFFE ID, critical since the subject is empty), nothing else in the SAN;
``CA:false`` (critical); key usage digitalSignature (+ keyEncipherment for RSA keys, critical); EKU serverAuth +
clientAuth; a random positive 159-bit serial; ``notBefore`` backdated (20 s by default) and ``notAfter`` clamped so
the leaf never outlives any certificate of its chain. Signing is refused (`IssuerExpired`) when the issuer (or any
certificate above it) has expired or has less than ``IssuancePolicy.min_issuer_remaining`` left.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from xds_server.ca.clock import Clock, resolve_now, system_clock
from xds_server.ca.csr import validate_csr
from xds_server.ca.identity import SpiffeId
from xds_server.ca.keys import KeyAlgorithm, PrivateKey, PublicKey, generate_private_key, private_key_pem
from xds_server.ca.keys import signature_hash as _signature_hash
from xds_server.errors import InvalidRequest, IssuerExpired, IssuerNotYetValid

__all__ = [
    "IssuancePolicy",
    "IssuedCertificate",
    "IssuedKeypair",
    "Issuer",
    "authority_key_identifier",
    "certificate_pem",
    "random_serial",
]


def random_serial() -> int:
    """A random positive serial number of at most 159 bits (fits the 20 octets RFC 5280 allows)."""
    while True:
        serial = secrets.randbits(159)
        if serial:
            return serial


def certificate_pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


@dataclass(frozen=True)
class IssuancePolicy:
    leaf_ttl: timedelta = timedelta(hours=24)
    max_leaf_ttl: timedelta = timedelta(days=30)
    backdate: timedelta = timedelta(seconds=20)
    # Refuse to sign when the issuer has less life than this left: the leaves would be too short to be useful.
    min_issuer_remaining: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.leaf_ttl <= timedelta(0) or self.max_leaf_ttl < self.leaf_ttl:
            raise ValueError("need 0 < leaf_ttl <= max_leaf_ttl")
        if self.backdate < timedelta(0) or self.min_issuer_remaining < timedelta(0):
            raise ValueError("backdate and min_issuer_remaining must not be negative")


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf and the intermediates a peer needs to build the path to the root (the root is not included)."""

    identity: SpiffeId
    certificate: x509.Certificate
    intermediates: tuple[x509.Certificate, ...] = ()

    @property
    def serial_number(self) -> int:
        return self.certificate.serial_number

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @property
    def certificate_pem(self) -> bytes:
        return certificate_pem(self.certificate)

    @property
    def chain_pem(self) -> bytes:
        """Leaf then intermediates: what a proxy presents (Envoy's ``certificate_chain``)."""
        return certificate_pem(self.certificate, *self.intermediates)


@dataclass(frozen=True)
class IssuedKeypair(IssuedCertificate):
    """An `IssuedCertificate` with the private key generated for it (for proxies the control plane provisions)."""

    private_key: PrivateKey = field(repr=False, compare=False, kw_only=True)

    @property
    def private_key_pem(self) -> bytes:
        return private_key_pem(self.private_key)


@dataclass(frozen=True)
class Issuer:
    """A CA that signs leaves. ``chain`` holds the certificates above ``certificate``, ending with the root;
    it is empty when ``certificate`` is itself the root."""

    certificate: x509.Certificate
    key: PrivateKey = field(repr=False, compare=False)
    trust_domain: str
    chain: tuple[x509.Certificate, ...] = ()
    policy: IssuancePolicy = field(default_factory=IssuancePolicy)
    clock: Clock = field(default=system_clock, repr=False, compare=False)

    # -- what the issuer is ---------------------------------------------------------------------------------------
    @property
    def root(self) -> x509.Certificate:
        return self.chain[-1] if self.chain else self.certificate

    @property
    def is_root(self) -> bool:
        return not self.chain

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        """The issuer and the intermediates above it, without the root: what every leaf is served with."""
        path = (self.certificate, *self.chain)
        return path[:-1]

    @property
    def not_before(self) -> datetime:
        """When the whole path to the root is valid: the latest ``notBefore`` of the chain."""
        return max(c.not_valid_before_utc for c in (self.certificate, *self.chain))

    @property
    def not_after(self) -> datetime:
        """When the first certificate of the path to the root expires."""
        return min(c.not_valid_after_utc for c in (self.certificate, *self.chain))

    @property
    def certificate_pem(self) -> bytes:
        return certificate_pem(self.certificate)

    @property
    def chain_pem(self) -> bytes:
        """The issuer and everything above it, root last."""
        return certificate_pem(self.certificate, *self.chain)

    def __str__(self) -> str:
        subject = self.certificate.subject.rfc4514_string() or "<empty subject>"
        serial = f"{self.certificate.serial_number:x}"
        return f"Issuer({subject}, serial={serial}, not_after={self.not_after:%Y-%m-%dT%H:%M:%SZ})"

    # -- rules ----------------------------------------------------------------------------------------------------
    def check_can_sign(self, now: datetime | None = None) -> datetime:
        """Raise unless the issuer may sign at ``now``; return ``now`` resolved."""
        now = resolve_now(now, self.clock)
        for cert in (self.certificate, *self.chain):
            what = "issuer" if cert is self.certificate else ("root" if cert is self.root else "intermediate")
            name = cert.subject.rfc4514_string() or "<empty subject>"
            if now >= cert.not_valid_after_utc:
                raise IssuerExpired(
                    f"refusing to sign: the {what} certificate {name!r} (serial {cert.serial_number:x}) expired at "
                    f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}; rotate the CA (see `meshctl certs status`)"
                )
            if now < cert.not_valid_before_utc:
                raise IssuerNotYetValid(
                    f"refusing to sign: the {what} certificate {name!r} is not valid before "
                    f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} (clock skew?)"
                )
        remaining = self.not_after - now
        if remaining < self.policy.min_issuer_remaining:
            raise IssuerExpired(
                f"refusing to sign: the CA expires at {self.not_after:%Y-%m-%dT%H:%M:%SZ}, only {remaining} from now "
                f"(the minimum is {self.policy.min_issuer_remaining}); rotate the CA (see `meshctl certs status`)"
            )
        return now

    def _validity(self, now: datetime, ttl: timedelta | None) -> tuple[datetime, datetime]:
        ttl = self.policy.leaf_ttl if ttl is None else ttl
        ttl = timedelta(seconds=int(ttl.total_seconds()))  # X.509 times have whole seconds
        if ttl <= timedelta(0):
            raise InvalidRequest(f"a certificate lifetime must be at least one second, got {ttl}")
        if ttl > self.policy.max_leaf_ttl:
            raise InvalidRequest(f"a certificate lifetime of {ttl} exceeds the maximum of {self.policy.max_leaf_ttl}")
        not_before = max(now - self.policy.backdate, self.not_before)
        not_after = min(now + ttl, self.not_after)
        return not_before, not_after

    def _check_identity(self, identity: SpiffeId) -> None:
        if not isinstance(identity, SpiffeId):
            raise InvalidRequest(f"an identity must be a SpiffeId, got {type(identity).__name__}")
        if identity.trust_domain != self.trust_domain:
            raise InvalidRequest(
                f"{identity} is outside this CA's trust domain {self.trust_domain!r}; refusing to issue"
            )

    # -- issuance -------------------------------------------------------------------------------------------------
    def sign_csr(
        self,
        csr: bytes | str | x509.CertificateSigningRequest,
        identity: SpiffeId,
        *,
        ttl: timedelta | None = None,
        now: datetime | None = None,
    ) -> IssuedCertificate:
        """Certify the key of a CSR for ``identity`` (the authenticated requester, not what the CSR claims).

        Raises `InvalidRequest` for a CSR that breaks the rules (any bytes at all), `IssuerExpired` /
        `IssuerNotYetValid` when the issuer cannot sign now.
        """
        self._check_identity(identity)
        public_key = validate_csr(csr, identity)
        now = self.check_can_sign(now)
        return self._issue(identity, public_key, now, ttl)

    def issue_keypair(
        self,
        identity: SpiffeId,
        *,
        key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
        ttl: timedelta | None = None,
        now: datetime | None = None,
    ) -> IssuedKeypair:
        """Generate a fresh key and certify it for ``identity`` (local mode: the control plane provisions proxies)."""
        self._check_identity(identity)
        now = self.check_can_sign(now)
        self._validity(now, ttl)  # refuse a bad TTL before spending time on key generation
        key = generate_private_key(key_algorithm)
        issued = self._issue(identity, key.public_key(), now, ttl)
        return IssuedKeypair(identity, issued.certificate, issued.intermediates, private_key=key)

    def _issue(
        self, identity: SpiffeId, public_key: PublicKey, now: datetime, ttl: timedelta | None
    ) -> IssuedCertificate:
        not_before, not_after = self._validity(now, ttl)
        rsa_key = isinstance(public_key, rsa.RSAPublicKey)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(random_serial())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_key_usage(rsa_key), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            # The subject is empty, so RFC 5280 §4.2.1.6 requires the SAN to be critical.
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.uri)]), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(authority_key_identifier(self.certificate), critical=False)
        )
        certificate = builder.sign(self.key, _signature_hash(self.key))
        return IssuedCertificate(identity, certificate, self.intermediates)


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI for certificates signed by ``issuer``: its SKI when it has one, else derived from its key."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _leaf_key_usage(rsa_key: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_key,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
