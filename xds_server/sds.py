"""Secrets for SDS: a proxy's certificate and the mesh trust bundle, as serialized xDS resources.

Pure: PEM in, :class:`~xds_server.snapshot.CachedResource` out. Private keys travel only inside the serialized
``Secret`` body; nothing here logs or formats them. Each proxy's snapshot holds only its own certificate, and the
ADS server refuses a secret to a stream whose peer identity is not the secret's owner (see ``authorize``).
"""

from __future__ import annotations

from envoy_data_plane.envoy.config.core.v3 import DataSource
from envoy_data_plane.envoy.extensions.transport_sockets.tls.v3 import (
    CertificateValidationContext,
    Secret,
    TlsCertificate,
)

from xds_server.serialize import encode
from xds_server.snapshot import SECRET, CachedResource


def certificate_secret(name: str, cert_chain_pem: bytes, private_key_pem: bytes) -> CachedResource:
    msg = Secret(
        name=name,
        tls_certificate=TlsCertificate(
            certificate_chain=DataSource(inline_bytes=cert_chain_pem),
            private_key=DataSource(inline_bytes=private_key_pem),
        ),
    )
    return CachedResource.of(SECRET, name, encode(msg))


def bundle_secret(name: str, bundle_pem: bytes) -> CachedResource:
    msg = Secret(
        name=name, validation_context=CertificateValidationContext(trusted_ca=DataSource(inline_bytes=bundle_pem))
    )
    return CachedResource.of(SECRET, name, encode(msg))
