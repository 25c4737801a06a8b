"""The built-in certificate authority: SPIFFE identities, X.509-SVID issuance, trust bundles, renewal timing,
staged root rotation and expiry status. Kubernetes-free and pure, except `xds_server.ca.store` (file I/O).

Typical use::

    issuer = store.load_or_create(path, "cluster.local")          # root created on first start
    leaf = issuer.sign_csr(csr_pem, SpiffeId.parse(peer_identity))  # or issuer.issue_keypair(identity)
    bundle = TrustBundle.of(issuer.root)                            # served over SDS
"""

from __future__ import annotations

from xds_server.ca.authority import (
    DEFAULT_INTERMEDIATE_TTL,
    DEFAULT_ROOT_TTL,
    create_intermediate,
    create_root,
    issuer_from_pem,
)
from xds_server.ca.bundle import TrustBundle, fingerprint
from xds_server.ca.clock import Clock, system_clock
from xds_server.ca.csr import load_csr, validate_csr
from xds_server.ca.identity import SpiffeId, validate_trust_domain
from xds_server.ca.issuer import IssuancePolicy, IssuedCertificate, IssuedKeypair, Issuer, certificate_pem
from xds_server.ca.keys import KeyAlgorithm
from xds_server.ca.renewal import renewal_time, renewal_time_for
from xds_server.ca.rotation import RootRotation, RotationPhase, RotationStep, StepRecord
from xds_server.ca.status import CertStatus, cert_status, format_time_left, issuer_status, root_expiry_warning

__all__ = [
    "DEFAULT_INTERMEDIATE_TTL",
    "DEFAULT_ROOT_TTL",
    "CertStatus",
    "Clock",
    "IssuancePolicy",
    "IssuedCertificate",
    "IssuedKeypair",
    "Issuer",
    "KeyAlgorithm",
    "RootRotation",
    "RotationPhase",
    "RotationStep",
    "SpiffeId",
    "StepRecord",
    "TrustBundle",
    "cert_status",
    "certificate_pem",
    "create_intermediate",
    "create_root",
    "fingerprint",
    "format_time_left",
    "issuer_from_pem",
    "issuer_status",
    "load_csr",
    "renewal_time",
    "renewal_time_for",
    "root_expiry_warning",
    "system_clock",
    "validate_csr",
    "validate_trust_domain",
]
