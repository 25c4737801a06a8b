"""mTLS settings and access (RBAC) rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xds_server.ir.authn import RequestPrincipal
from xds_server.ir.common import Provenance
from xds_server.ir.routes import HeaderMatch, PathMatch


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    """Originate mTLS: present our SDS certificate, verify the peer against the bundle and its SPIFFE IDs."""

    sni: str
    #: Exact URI SANs the server may present (the destination service's identities).
    peer_spiffe_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InboundTls:
    """Terminate mTLS on an inbound listener. ``mode`` permissive also accepts plaintext."""

    mode: Literal["strict", "permissive"] = "strict"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from. Exactly one field is set."""

    spiffe_exact: str | None = None
    spiffe_prefix: str | None = None
    #: Any identity (used by rules without a ``from``).
    any: bool = False
    #: The end user of a JWT verified on this listener (not the calling workload).
    request: RequestPrincipal | None = None


@dataclass(frozen=True, slots=True)
class RequestMatch:
    """What a request is. Empty means any request."""

    paths: tuple[PathMatch, ...] = ()
    methods: tuple[str, ...] = ()
    headers: tuple[HeaderMatch, ...] = ()
    #: Match ``paths`` ignoring case.
    ignore_case: bool = False


@dataclass(frozen=True, slots=True)
class AccessRule:
    """Matches when the source is any of ``principals`` AND the request is any of ``requests`` (empty = any)."""

    name: str
    principals: tuple[Principal, ...]
    requests: tuple[RequestMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class RbacPolicy:
    """The rules of one AccessPolicy. Shadow policies are evaluated and counted but never deny."""

    provenance: Provenance
    action: Literal["allow", "deny"]
    rules: tuple[AccessRule, ...]
    shadow: bool = False
