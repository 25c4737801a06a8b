"""End-user JWT authentication (``envoy.filters.http.jwt_authn``) on inbound listeners, and the RBAC principals
that match the verified token.

Filter order on an inbound listener with providers (see :mod:`.listener_inbound`):

1. ``meshwork.jwt.strip_claim_headers`` (``header_mutation``): removes every header a provider copies a claim
   into, so only a verified token can set one (a caller's own ``x-jwt-sub`` never reaches the app).
2. ``envoy.filters.http.jwt_authn``: one requirement for every path, ``requires_any`` of the enforced providers
   plus ``allow_missing``: no token passes, an invalid token (signature, expiry, issuer, audience, ``alg: none``)
   is answered 401. With only shadowed providers the requirement is ``allow_missing_or_failed`` instead: tokens are
   verified, never refused; a shadow RBAC filter (``meshwork.jwt.shadow``) counts per policy the tokens Enforce
   would have refused (``rbac.jwt_shadow_.policy.<AuthenticationPolicy ref>.shadow_denied``).
3. the RBAC filters, which read the verified payload from dynamic metadata (``envoy.filters.http.jwt_authn`` ->
   ``meshwork_jwt``) for ``requestPrincipals`` and claim conditions.

Remote JWKS: Envoy fetches the keys itself, through a STATIC (IP address) or STRICT_DNS cluster named
``jwks|host|port`` generated per distinct host and port, asynchronously (``fast_listener``: the listener does not
wait for the first fetch) and again whenever ``cache_duration`` expires.
"""

from __future__ import annotations

import functools
import ipaddress
from datetime import timedelta
from typing import Final

from envoy_data_plane.envoy.config.accesslog.v3 import AccessLogFilter, ExtensionFilter
from envoy_data_plane.envoy.config.cluster.v3 import Cluster, ClusterDiscoveryType, ClusterDnsLookupFamily
from envoy_data_plane.envoy.config.common.mutation_rules.v3 import HeaderMutation as HeaderMutationRule
from envoy_data_plane.envoy.config.core.v3 import DataSource, HttpUri
from envoy_data_plane.envoy.config.endpoint.v3 import ClusterLoadAssignment, LocalityLbEndpoints
from envoy_data_plane.envoy.config.rbac.v3 import (
    Permission,
    Policy,
    Principal,
    PrincipalSet,
    Rbac,
    RbacAction,
    SourcedMetadata,
)
from envoy_data_plane.envoy.config.route.v3 import RouteMatch
from envoy_data_plane.envoy.extensions.access_loggers.filters.cel.v3 import ExpressionFilter
from envoy_data_plane.envoy.extensions.filters.http.header_mutation.v3 import HeaderMutation, Mutations
from envoy_data_plane.envoy.extensions.filters.http.jwt_authn.v3 import (
    JwksAsyncFetch,
    JwtAuthentication,
    JwtClaimToHeader,
    JwtHeader,
    JwtProvider,
    JwtRequirement,
    JwtRequirementOrList,
    RemoteJwks,
    RequirementRule,
)
from envoy_data_plane.envoy.extensions.filters.http.rbac.v3 import Rbac as HttpRbac
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
    HttpFilter,
    LocalReplyConfig,
    ResponseMapper,
)
from envoy_data_plane.envoy.extensions.transport_sockets.tls.v3 import (
    CertificateValidationContext,
    CommonTlsContext,
    TlsParameters,
    TlsParametersTlsProtocol,
    UpstreamTlsContext,
)
from envoy_data_plane.envoy.type.matcher.v3 import (
    ListMatcher,
    MetadataMatcher,
    MetadataMatcherPathSegment,
    StringMatcher,
    ValueMatcher,
)
from envoy_data_plane.google.protobuf import Empty

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate._common import ms, pack, transport_socket
from xds_server.translate._memo import memoize
from xds_server.translate.access_log import JWT_SHADOW_PREFIX
from xds_server.translate.endpoint import lb_endpoint

FILTER_NAME: Final = "envoy.filters.http.jwt_authn"
STRIP_FILTER_NAME: Final = "meshwork.jwt.strip_claim_headers"
#: The dynamic-metadata key (under :data:`FILTER_NAME`) holding the verified payload.
PAYLOAD_KEY: Final = "meshwork_jwt"
#: The dynamic-metadata key holding why verification failed (``{code, message}``), in shadow mode.
FAILURE_KEY: Final = "meshwork_jwt_failure"
SHADOW_RBAC_FILTER: Final = "meshwork.jwt.shadow"
MISSING_MESSAGE: Final = "Jwt is missing"
STAT_PREFIX: Final = "meshwork_jwt"
SHADOW_STAT_PREFIX: Final = "meshwork_jwt_shadow"
#: The shadow RBAC filter's rule prefix: its stats and its dynamic metadata (``<prefix>shadow_effective_policy_id``,
#: logged as ``jwt_shadow_deny``).
SHADOW_RULES_PREFIX: Final = JWT_SHADOW_PREFIX
#: Where https JWKS servers' certificates are checked against (Debian's bundle).
SYSTEM_CA_BUNDLE: Final = "/etc/ssl/certs/ca-certificates.crt"


def _provider(p: ir.JwtProvider) -> JwtProvider:
    remote = None
    if p.remote_jwks is not None:
        r = p.remote_jwks
        remote = new(
            RemoteJwks,
            http_uri=new(HttpUri, uri=r.uri, cluster=r.cluster, timeout=ms(r.timeout_ms)),
            cache_duration=ms(r.cache_duration_ms),
            async_fetch=new(JwksAsyncFetch, fast_listener=True, failed_refetch_duration=timedelta(seconds=1)),
        )
    return new(
        JwtProvider,
        issuer=p.issuer,
        audiences=list(p.audiences),
        remote_jwks=remote,
        local_jwks=new(DataSource, inline_string=p.local_jwks) if p.local_jwks is not None else None,
        forward=p.forward,
        from_headers=[new(JwtHeader, name=n, value_prefix=prefix) for n, prefix in p.headers],
        from_params=list(p.params),
        from_cookies=list(p.cookies),
        payload_in_metadata=PAYLOAD_KEY,
        failed_status_in_metadata=FAILURE_KEY if p.shadow else "",
        claim_to_headers=[new(JwtClaimToHeader, header_name=h, claim_name=c) for c, h in p.claim_headers],
    )


def _requires_any(names: list[str], fallback: JwtRequirement) -> JwtRequirement:
    options = [new(JwtRequirement, provider_name=n) for n in names] + [fallback]
    return new(JwtRequirement, requires_any=new(JwtRequirementOrList, requirements=options))


def authentication(authn: ir.JwtAuthn) -> JwtAuthentication:
    enforced = [p.name for p in authn.providers if not p.shadow]
    if enforced:
        requirement = _requires_any(enforced, new(JwtRequirement, allow_missing=new(Empty)))
    else:
        shadow = [p.name for p in authn.providers]
        requirement = _requires_any(shadow, new(JwtRequirement, allow_missing_or_failed=new(Empty)))
    return new(
        JwtAuthentication,
        providers={p.name: _provider(p) for p in authn.providers},
        rules=[new(RequirementRule, match=new(RouteMatch, prefix="/"), requires=requirement)],
        stat_prefix=STAT_PREFIX if enforced else SHADOW_STAT_PREFIX,
    )


def claim_headers(authn: ir.JwtAuthn) -> tuple[str, ...]:
    return tuple(sorted({h for p in authn.providers for _, h in p.claim_headers}))


@memoize(4096)
def http_filters(authn: ir.JwtAuthn) -> tuple[HttpFilter, ...]:
    """The filters that run before RBAC on an inbound listener with JWT providers."""
    out: list[HttpFilter] = []
    strip = claim_headers(authn)
    if strip:
        mutations = new(Mutations, request_mutations=[new(HeaderMutationRule, remove=h) for h in strip])
        out.append(new(HttpFilter, name=STRIP_FILTER_NAME, typed_config=pack(new(HeaderMutation, mutations=mutations))))
    out.append(new(HttpFilter, name=FILTER_NAME, typed_config=pack(authentication(authn))))
    if not any(not p.shadow for p in authn.providers):
        out.append(_shadow_counter(authn))
    return tuple(out)


def _shadow_counter(authn: ir.JwtAuthn) -> HttpFilter:
    """Shadow mode: an RBAC filter with only ``shadow_rules`` that "denies" a request whose token failed
    verification (a missing token is not a failure), so ``rbac.jwt_shadow_.policy.<policy>.shadow_denied``
    counts, per AuthenticationPolicy, what Enforce would have refused with 401; nothing is refused."""
    failed = new(
        Principal,
        and_ids=new(
            PrincipalSet,
            ids=[
                _metadata(FAILURE_KEY, "message", new(ValueMatcher, present_match=True)),
                new(
                    Principal,
                    not_id=_metadata(
                        FAILURE_KEY,
                        "message",
                        new(ValueMatcher, string_match=new(StringMatcher, exact=MISSING_MESSAGE)),
                    ),
                ),
            ],
        ),
    )
    policies = {
        p.provenance.ref: new(Policy, principals=[failed], permissions=[new(Permission, any=True)])
        for p in authn.providers
    }
    cfg = new(
        HttpRbac,
        shadow_rules=new(Rbac, action=RbacAction.DENY, policies=dict(sorted(policies.items()))),
        shadow_rules_stat_prefix=SHADOW_RULES_PREFIX,
        track_per_rule_stats=True,
    )
    return new(HttpFilter, name=SHADOW_RBAC_FILTER, typed_config=pack(cfg))


def _jwks_cluster(r: ir.RemoteJwks) -> Cluster:
    try:
        ipaddress.ip_address(r.host)
        kind = ClusterDiscoveryType.STATIC
    except ValueError:
        kind = ClusterDiscoveryType.STRICT_DNS
    endpoint = lb_endpoint(ir.Endpoint(r.host, r.port))
    tls = None
    if r.tls:
        tls = transport_socket(
            new(
                UpstreamTlsContext,
                sni=r.host,
                common_tls_context=new(
                    CommonTlsContext,
                    tls_params=new(TlsParameters, tls_minimum_protocol_version=TlsParametersTlsProtocol.TLSv1_2),
                    validation_context=new(
                        CertificateValidationContext,
                        trusted_ca=new(DataSource, filename=SYSTEM_CA_BUNDLE),
                    ),
                ),
            )
        )
    return new(
        Cluster,
        name=r.cluster,
        type=kind,
        dns_lookup_family=ClusterDnsLookupFamily.V4_PREFERRED,
        connect_timeout=ms(max(r.timeout_ms, 100)),
        load_assignment=new(
            ClusterLoadAssignment,
            cluster_name=r.cluster,
            endpoints=[new(LocalityLbEndpoints, lb_endpoints=[endpoint])],
        ),
        transport_socket=tls,
    )


def clusters(cfg: ir.ProxyConfig) -> tuple[Cluster, ...]:
    """The JWKS-fetching clusters of one proxy, one per distinct ``host:port``, by name."""
    remotes = {
        p.remote_jwks.cluster: p.remote_jwks
        for il in cfg.inbound
        if il.jwt is not None
        for p in il.jwt.providers
        if p.remote_jwks is not None
    }
    return tuple(_cached_cluster(remotes[name]) for name in sorted(remotes))


@memoize(4096)
def _cached_cluster(r: ir.RemoteJwks) -> Cluster:
    return _jwks_cluster(r)


@functools.cache
def local_reply_config() -> LocalReplyConfig:
    """Every refusal by ``jwt_authn`` is a 401: Envoy answers a token of the wrong audience with 403, but a token
    not meant for this service is an invalid credential (RFC 6750 ``invalid_token``), not a lack of permission.
    403 stays what access rules answer."""
    cel = new(ExpressionFilter, expression='response.code_details.startsWith("jwt_authn_access_denied")')
    only_jwt = new(
        AccessLogFilter,
        extension_filter=new(
            ExtensionFilter, name="envoy.access_loggers.extension_filters.cel", typed_config=pack(cel)
        ),
    )
    return new(LocalReplyConfig, mappers=[new(ResponseMapper, filter=only_jwt, status_code=401)])


# ------------------------------------------------------------------ RBAC principals on the verified token


def _metadata(key: str, field: str, value: ValueMatcher) -> Principal:
    matcher = new(
        MetadataMatcher,
        filter=FILTER_NAME,
        path=[new(MetadataMatcherPathSegment, key=key), new(MetadataMatcherPathSegment, key=field)],
        value=value,
    )
    return new(Principal, sourced_metadata=new(SourcedMetadata, metadata_matcher=matcher))


def _payload_matcher(claim: str, value: ValueMatcher) -> Principal:
    return _metadata(PAYLOAD_KEY, claim, value)


def _string(kind: str, text: str) -> StringMatcher:
    if kind == "prefix":
        return new(StringMatcher, prefix=text)
    if kind == "suffix":
        return new(StringMatcher, suffix=text)
    return new(StringMatcher, exact=text)


def _part(claim: str, part: ir.authn.PrincipalPart) -> Principal:
    if part is None:
        return _payload_matcher(claim, new(ValueMatcher, present_match=True))
    return _payload_matcher(claim, new(ValueMatcher, string_match=_string(*part)))


def _all(ids: list[Principal]) -> Principal:
    return ids[0] if len(ids) == 1 else new(Principal, and_ids=new(PrincipalSet, ids=ids))


def _any(ids: list[Principal]) -> Principal:
    return ids[0] if len(ids) == 1 else new(Principal, or_ids=new(PrincipalSet, ids=ids))


def _claim(name: str, values: tuple[str, ...]) -> Principal:
    options: list[Principal] = []
    for v in values:
        exact = new(ValueMatcher, string_match=new(StringMatcher, exact=v))
        options.append(_payload_matcher(name, exact))
        options.append(_payload_matcher(name, new(ValueMatcher, list_match=new(ListMatcher, one_of=exact))))
    return _any(options)


def principal(r: ir.RequestPrincipal) -> Principal:
    """A verified token (its payload is in metadata) whose iss/sub match any of the principals and whose claims
    meet every condition."""
    parts: list[Principal] = []
    if r.principals:
        parts.append(_any([_all([_part("iss", iss), _part("sub", sub)]) for iss, sub in r.principals]))
    parts.extend(_claim(name, values) for name, values in r.claims)
    if not parts:
        parts.append(_part("iss", None))
    return _all(parts)
