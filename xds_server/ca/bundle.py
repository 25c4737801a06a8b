"""The trust bundle: an ordered set of root certificates, served to proxies (SDS ``validation_context``).

During a root rotation it holds two roots. Its `version` is a content hash, so every replica agrees on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from xds_server.ca.authority import load_certificates_pem
from xds_server.errors import InvalidCaMaterial

__all__ = ["TrustBundle", "fingerprint"]


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, lowercase hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class TrustBundle:
    roots: tuple[x509.Certificate, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for cert in self.roots:
            if not isinstance(cert, x509.Certificate):
                raise InvalidCaMaterial(f"a trust bundle holds certificates, got {type(cert).__name__}")
            try:
                ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
            except x509.ExtensionNotFound:
                ca = False
            if not ca:
                raise InvalidCaMaterial(
                    f"{cert.subject.rfc4514_string() or '<empty subject>'} is not a CA certificate; "
                    "a trust bundle holds roots only"
                )
            fp = fingerprint(cert)
            if fp in seen:
                raise InvalidCaMaterial(f"root {fp[:16]} appears twice in the trust bundle")
            seen.add(fp)

    @classmethod
    def of(cls, *roots: x509.Certificate) -> TrustBundle:
        """A bundle of ``roots`` in order, duplicates dropped."""
        unique: dict[str, x509.Certificate] = {}
        for cert in roots:
            unique.setdefault(fingerprint(cert), cert)
        return cls(tuple(unique.values()))

    @classmethod
    def from_pem(cls, data: bytes) -> TrustBundle:
        return cls.of(*load_certificates_pem(data, "trust bundle"))

    def with_root(self, root: x509.Certificate) -> TrustBundle:
        """This bundle plus ``root`` at the end (unchanged if it is already in)."""
        return TrustBundle.of(*self.roots, root)

    def without_root(self, root: x509.Certificate) -> TrustBundle:
        fp = fingerprint(root)
        return TrustBundle(tuple(c for c in self.roots if fingerprint(c) != fp))

    def to_pem(self) -> bytes:
        """The roots, PEM-concatenated in order."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.roots)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(fingerprint(c) for c in self.roots)

    @property
    def version(self) -> str:
        """A content hash of the bundle (order included): equal bundles, equal versions."""
        return hashlib.sha256(self.to_pem()).hexdigest()[:16]

    def __contains__(self, cert: object) -> bool:
        return isinstance(cert, x509.Certificate) and fingerprint(cert) in self.fingerprints

    def __iter__(self) -> Iterator[x509.Certificate]:
        return iter(self.roots)

    def __len__(self) -> int:
        return len(self.roots)

    def extend(self, roots: Iterable[x509.Certificate]) -> TrustBundle:
        return TrustBundle.of(*self.roots, *roots)
