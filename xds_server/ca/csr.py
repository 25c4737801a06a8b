"""Validation of certificate signing requests from proxies.

`validate_csr` turns arbitrary bytes into the public key to certify, or raises `InvalidRequest` saying why not.
It never raises anything else, whatever the input: the bytes come from the network.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from xds_server.ca.identity import SpiffeId
from xds_server.ca.keys import PublicKey, key_problem
from xds_server.errors import InvalidRequest

__all__ = ["MAX_CSR_BYTES", "load_csr", "validate_csr"]

MAX_CSR_BYTES = 64 * 1024
_PEM_MARKER = b"-----BEGIN"
# What cryptography raises on malformed input (its Rust parser reports ValueError for almost everything).
_PARSE_ERRORS = (
    ValueError,
    TypeError,
    UnicodeError,
    OverflowError,
    InvalidSignature,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    x509.InvalidVersion,
)


def load_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """Parse a PEM or DER CSR; `InvalidRequest` if it is not one."""
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeError:
            raise InvalidRequest("the CSR is text but not ASCII PEM") from None
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidRequest(f"a CSR must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise InvalidRequest("the CSR is empty")
    if len(data) > MAX_CSR_BYTES:
        raise InvalidRequest(f"the CSR is {len(data)} bytes long (at most {MAX_CSR_BYTES})")
    pem = data.lstrip().startswith(_PEM_MARKER)
    try:
        return x509.load_pem_x509_csr(data) if pem else x509.load_der_x509_csr(data)
    except _PARSE_ERRORS as exc:
        raise InvalidRequest(f"the CSR does not parse as {'PEM' if pem else 'DER'}: {_short(exc)}") from None


def validate_csr(data: bytes | str | x509.CertificateSigningRequest, identity: SpiffeId) -> PublicKey:
    """Check a CSR against the issuance rules and return the public key to certify.

    Rules: the self-signature verifies; the key is EC P-256/P-384 or RSA 2048..8192; the CSR asks for exactly one
    subject alternative name, a URI equal to ``identity``. Every other part of the CSR (subject, other extensions)
    is ignored: the certificate is built from ``identity`` alone.
    """
    csr = data if isinstance(data, x509.CertificateSigningRequest) else load_csr(data)
    try:
        return _validate(csr, identity)
    except InvalidRequest:
        raise
    except _PARSE_ERRORS as exc:
        raise InvalidRequest(f"the CSR is malformed: {_short(exc)}") from None


def _validate(csr: x509.CertificateSigningRequest, identity: SpiffeId) -> PublicKey:
    public_key = csr.public_key()
    problem = key_problem(public_key)
    if problem:
        raise InvalidRequest(f"the CSR's key is refused: {problem}")
    if not csr.is_signature_valid:
        raise InvalidRequest("the CSR's signature does not verify with its own public key")
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise InvalidRequest(
            f"the CSR has no subject alternative name; it must hold exactly the URI {identity}"
        ) from None
    names = list(san)
    if len(names) != 1:
        raise InvalidRequest(
            f"the CSR has {len(names)} subject alternative names; it must hold exactly one, the URI {identity}"
        )
    (name,) = names
    if not isinstance(name, x509.UniformResourceIdentifier):
        raise InvalidRequest(f"the CSR's subject alternative name is a {type(name).__name__}, not the URI {identity}")
    if name.value != identity.uri:
        shown = name.value if len(name.value) <= 200 else name.value[:200] + "..."
        raise InvalidRequest(f"the CSR asks for {shown!r} but the requester's identity is {identity}")
    assert isinstance(public_key, PublicKey)  # key_problem accepted it
    return public_key


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."
