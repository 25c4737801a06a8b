"""Errors raised by ``xds_server``.

Invalid *policy* is data (a status condition), never an exception. What is raised here is for infrastructure
and programming faults::

    XdsError
    ├── EnvoyNotFound         the Envoy binary is missing
    ├── TranslationError      the IR could not be turned into Envoy resources (a bug: the IR is validated)
    ├── InconsistentSnapshot  a snapshot refers to a cluster/route config it does not hold
    └── CertificateError      the CA refused to issue or load material
        ├── IssuerExpired     the issuer is expired or too close to expiry to sign
        ├── IssuerNotYetValid the issuer's validity has not started (clock skew or a future-dated CA)
        ├── InvalidRequest    a CSR or identity breaks the issuance rules
        │   └── InvalidSpiffeId   a SPIFFE ID that does not parse or breaks the naming rules
        ├── InvalidCaMaterial a root/intermediate, key, chain or trust bundle that cannot be used
        ├── InsecureKeyFile   a private key file readable by group or others (refused, never loaded)
        └── RotationError     root rotation state that cannot be loaded
            └── RotationStepRefused   a rotation step out of order or before its material reached every proxy
"""

from __future__ import annotations


class XdsError(Exception):
    """Base of every error ``xds_server`` raises."""


class EnvoyNotFound(XdsError):
    pass


class TranslationError(XdsError):
    pass


class InconsistentSnapshot(XdsError):
    pass


class CertificateError(XdsError):
    pass


class IssuerExpired(CertificateError):
    pass


class InvalidRequest(CertificateError):
    pass


class IssuerNotYetValid(CertificateError):
    pass


class InvalidSpiffeId(InvalidRequest):
    pass


class InvalidCaMaterial(CertificateError):
    pass


class InsecureKeyFile(CertificateError):
    pass


class RotationError(CertificateError):
    pass


class RotationStepRefused(RotationError):
    pass
