"""End-user authentication: JWT providers on an inbound listener, and the request principals access rules match.

The JWT payload a provider verified is what RBAC's request-principal rules read (dynamic metadata), so these two
halves meet in the inbound filter chain: ``jwt_authn`` runs before the RBAC filters (see
:mod:`xds_server.translate.listener_inbound`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xds_server.ir.common import Provenance

#: One part (issuer or subject) of a request principal: ``(kind, text)``, or ``None`` for any value.
PrincipalPart = tuple[Literal["exact", "prefix", "suffix"], str] | None


@dataclass(frozen=True, slots=True)
class RemoteJwks:
    """Keys Envoy fetches itself from ``uri`` through the generated cluster ``cluster`` (``host:port``)."""

    uri: str
    cluster: str
    host: str
    port: int
    tls: bool
    cache_duration_ms: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class JwtProvider:
    """One issuer's tokens. Exactly one of ``local_jwks`` (JSON text) and ``remote_jwks`` is set."""

    name: str
    issuer: str
    provenance: Provenance
    audiences: tuple[str, ...] = ()
    local_jwks: str | None = None
    remote_jwks: RemoteJwks | None = None
    #: ``(header name, value prefix)``; with no location at all Envoy reads ``Authorization: Bearer``.
    headers: tuple[tuple[str, str], ...] = ()
    params: tuple[str, ...] = ()
    cookies: tuple[str, ...] = ()
    #: ``(claim, header)``: copied from a verified token into the request.
    claim_headers: tuple[tuple[str, str], ...] = ()
    forward: bool = False
    #: Verify and count, never refuse.
    shadow: bool = False


@dataclass(frozen=True, slots=True)
class JwtAuthn:
    providers: tuple[JwtProvider, ...]


@dataclass(frozen=True, slots=True)
class RequestPrincipal:
    """The end user of a verified JWT: any of ``principals`` (issuer, subject) AND every claim condition.
    Empty ``principals``: any verified token (subject to ``claims``)."""

    principals: tuple[tuple[PrincipalPart, PrincipalPart], ...] = ()
    #: ``(claim, values)``: the claim equals one of the values, or (a list claim) holds one of them.
    claims: tuple[tuple[str, tuple[str, ...]], ...] = ()
