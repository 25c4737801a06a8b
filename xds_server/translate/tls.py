"""mTLS transport sockets. Certificates and the trust bundle come over SDS (ADS) by name (``MeshSettings``).

Upstream (client side): present our certificate, trust the bundle, and accept only the exact URI SANs (SPIFFE
IDs) the destination may present. Downstream (server side): present our certificate, require a client
certificate chained to the bundle and carrying a SPIFFE ID of our trust domain; who may call what is decided by
RBAC on that ID. TLS 1.2 is the minimum both ways.
"""

from __future__ import annotations

from envoy_data_plane.envoy.extensions.transport_sockets.tls.v3 import (
    CertificateValidationContext,
    CommonTlsContext,
    CommonTlsContextCombinedCertificateValidationContext,
    DownstreamTlsContext,
    SdsSecretConfig,
    SubjectAltNameMatcher,
    SubjectAltNameMatcherSanType,
    TlsParameters,
    TlsParametersTlsProtocol,
    UpstreamTlsContext,
)
from envoy_data_plane.envoy.type.matcher.v3 import StringMatcher

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate._common import ads
from xds_server.translate._memo import memoize


def sds(name: str) -> SdsSecretConfig:
    return new(SdsSecretConfig, name=name, sds_config=ads())


def uri_san(matcher: StringMatcher) -> SubjectAltNameMatcher:
    return new(SubjectAltNameMatcher, san_type=SubjectAltNameMatcherSanType.URI, matcher=matcher)


def common_context(
    mesh: ir.MeshSettings, sans: list[SubjectAltNameMatcher], alpn: tuple[str, ...] = ()
) -> CommonTlsContext:
    return new(
        CommonTlsContext,
        tls_params=new(TlsParameters, tls_minimum_protocol_version=TlsParametersTlsProtocol.TLSv1_2),
        tls_certificate_sds_secret_configs=[sds(mesh.cert_secret)],
        combined_validation_context=new(
            CommonTlsContextCombinedCertificateValidationContext,
            default_validation_context=new(CertificateValidationContext, match_typed_subject_alt_names=sans),
            validation_context_sds_secret_config=sds(mesh.bundle_secret),
        ),
        alpn_protocols=list(alpn),
    )


def upstream(t: ir.UpstreamTls, mesh: ir.MeshSettings, http2: bool = False) -> UpstreamTlsContext:
    sans = [uri_san(new(StringMatcher, exact=s)) for s in t.peer_spiffe_ids]
    return new(
        UpstreamTlsContext,
        common_tls_context=common_context(mesh, sans, ("h2",) if http2 else ()),
        sni=t.sni,
    )


@memoize(64)
def downstream(mesh: ir.MeshSettings, alpn: tuple[str, ...] = ()) -> DownstreamTlsContext:
    """Server side of mesh mTLS: client certificates are required (the only way to reach a TLS inbound chain)."""
    sans = [uri_san(new(StringMatcher, prefix=f"spiffe://{mesh.trust_domain}/"))]
    return new(
        DownstreamTlsContext,
        common_tls_context=common_context(mesh, sans, alpn),
        require_client_certificate=True,
    )
