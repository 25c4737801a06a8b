"""AuthenticationPolicy -> the JWT providers of the target service's inbound listeners; AccessPolicy sources on
request principals -> :class:`ir.RequestPrincipal`."""

from __future__ import annotations

from mesh_operator.api.access_policy import Source
from mesh_operator.api.authentication_policy import AuthenticationPolicy, JwtProvider
from mesh_operator.api.common import duration_ms
from mesh_operator.validation.authentication_policy import remote_jwks_address
from mesh_operator.validation.request_principals import parse_request_principal
from xds_server import ir

DEFAULT_HEADER = ("authorization", "Bearer ")


def jwks_cluster_name(host: str, port: int) -> str:
    return f"jwks|{host}|{port}"


def _provider(p: AuthenticationPolicy, jp: JwtProvider, prov: ir.Provenance) -> ir.JwtProvider:
    remote = None
    if jp.jwks.remote is not None:
        scheme, host, port = remote_jwks_address(jp.jwks.remote.uri)
        remote = ir.RemoteJwks(
            uri=jp.jwks.remote.uri,
            cluster=jwks_cluster_name(host, port),
            host=host,
            port=port,
            tls=scheme == "https",
            cache_duration_ms=duration_ms(jp.jwks.remote.cache_duration),
            timeout_ms=duration_ms(jp.jwks.remote.timeout),
        )
    headers = tuple((loc.header.name.lower(), loc.header.prefix) for loc in jp.from_ if loc.header is not None)
    params = tuple(loc.query_param for loc in jp.from_ if loc.query_param is not None)
    cookies = tuple(loc.cookie for loc in jp.from_ if loc.cookie is not None)
    if not jp.from_:
        headers = (DEFAULT_HEADER,)
    return ir.JwtProvider(
        name=f"{prov.policy}#{jp.name}",
        issuer=jp.issuer,
        provenance=prov,
        audiences=tuple(jp.audiences),
        local_jwks=jp.jwks.inline,
        remote_jwks=remote,
        headers=headers,
        params=params,
        cookies=cookies,
        claim_headers=tuple((c.claim, c.header.lower()) for c in jp.claims_to_headers),
        forward=jp.forward_token,
        shadow=p.spec.mode == "Shadow",
    )


def jwt_authn(policies: list[AuthenticationPolicy]) -> ir.JwtAuthn | None:
    """Every provider of every accepted policy of one service, ordered by policy then provider name."""
    out: list[ir.JwtProvider] = []
    for p in sorted(policies, key=lambda p: (p.metadata.namespace, p.metadata.name)):
        prov = ir.Provenance(p.kind, p.metadata.namespace, p.metadata.name, p.metadata.generation)
        out.extend(_provider(p, jp, prov) for jp in sorted(p.spec.providers, key=lambda jp: jp.name))
    return ir.JwtAuthn(tuple(out)) if out else None


def request_principal(s: Source) -> ir.RequestPrincipal:
    return ir.RequestPrincipal(
        principals=tuple(parse_request_principal(t) for t in s.request_principals or []),
        claims=tuple((c.name, tuple(c.values)) for c in s.claims or []),
    )
