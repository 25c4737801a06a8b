"""HTTP routes: matches, weighted clusters, mirrors, retries, redirects, rewrites, timeouts, header edits, hashing.

One :class:`RouteConfiguration` per listener (outbound: a single virtual host with domains ``*`` because the
listener is already specific to one service; inbound: the per-route limits plus a catch-all to the app).
"""

from __future__ import annotations

from envoy_data_plane.envoy.config.core.v3 import HeaderValue, HeaderValueOption, HeaderValueOptionHeaderAppendAction
from envoy_data_plane.envoy.config.route.v3 import (
    RedirectAction,
    RedirectActionRedirectResponseCode,
    RetryPolicy,
    RetryPolicyRetryBackOff,
    Route,
    RouteAction,
    RouteActionHashPolicy,
    RouteActionHashPolicyConnectionProperties,
    RouteActionHashPolicyCookie,
    RouteActionHashPolicyHeader,
    RouteActionRequestMirrorPolicy,
    RouteConfiguration,
    VirtualHost,
    WeightedCluster,
    WeightedClusterClusterWeight,
)
from envoy_data_plane.envoy.type.matcher.v3 import RegexMatchAndSubstitute
from envoy_data_plane.google.protobuf import Any

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate import cors, fault, ratelimit, ratelimit_global
from xds_server.translate._common import ms, regex, runtime_fraction
from xds_server.translate._shared import shared
from xds_server.translate.matchers import route_match
from xds_server.translate.metadata import metadata, route_stat_prefix, stat_name

_REDIRECT_CODES = {
    301: RedirectActionRedirectResponseCode.MOVED_PERMANENTLY,
    302: RedirectActionRedirectResponseCode.FOUND,
    303: RedirectActionRedirectResponseCode.SEE_OTHER,
    307: RedirectActionRedirectResponseCode.TEMPORARY_REDIRECT,
    308: RedirectActionRedirectResponseCode.PERMANENT_REDIRECT,
}


def header_options(edits: ir.HeaderEdits) -> list[HeaderValueOption]:
    overwrite = HeaderValueOptionHeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD
    append = HeaderValueOptionHeaderAppendAction.APPEND_IF_EXISTS_OR_ADD
    return [
        new(HeaderValueOption, header=new(HeaderValue, key=k, value=v), append_action=overwrite) for k, v in edits.set
    ] + [new(HeaderValueOption, header=new(HeaderValue, key=k, value=v), append_action=append) for k, v in edits.add]


def hash_policy(h: ir.HashPolicy) -> RouteActionHashPolicy:
    if h.kind == "header":
        return new(RouteActionHashPolicy, header=new(RouteActionHashPolicyHeader, header_name=h.name))
    if h.kind == "cookie":
        ttl = ms(h.cookie_ttl_ms) if h.cookie_ttl_ms is not None else None
        return new(RouteActionHashPolicy, cookie=new(RouteActionHashPolicyCookie, name=h.name, ttl=ttl))
    return new(
        RouteActionHashPolicy, connection_properties=new(RouteActionHashPolicyConnectionProperties, source_ip=True)
    )


def retry_policy(r: ir.Retry) -> RetryPolicy:
    """Shared (never mutate it): one object per distinct policy content, whatever its provenance (every service's
    ``RetryPolicy`` of the same attempts and conditions is one message, serialized once)."""
    return _retry_policy(
        r.attempts, r.retry_on, r.retriable_status_codes, r.per_try_timeout_ms, r.backoff_base_ms, r.backoff_max_ms
    )


@shared(4_096)
def _retry_policy(
    attempts: int,
    conditions: tuple[str, ...],
    status_codes: tuple[int, ...],
    per_try_timeout_ms: int | None,
    backoff_base_ms: int | None,
    backoff_max_ms: int | None,
) -> RetryPolicy:
    retry_on = list(conditions)
    if status_codes and "retriable-status-codes" not in retry_on:
        retry_on.append("retriable-status-codes")
    back_off = None
    if backoff_base_ms is not None:
        back_off = new(
            RetryPolicyRetryBackOff,
            base_interval=ms(backoff_base_ms),
            max_interval=ms(backoff_max_ms) if backoff_max_ms is not None else None,
        )
    return new(
        RetryPolicy,
        retry_on=",".join(retry_on),
        num_retries=attempts,
        per_try_timeout=ms(per_try_timeout_ms) if per_try_timeout_ms is not None else None,
        retry_back_off=back_off,
        retriable_status_codes=list(status_codes),
    )


def redirect(r: ir.Redirect) -> RedirectAction:
    action = new(
        RedirectAction,
        scheme_redirect=r.scheme,
        host_redirect=r.host or "",
        port_redirect=r.port or 0,
        path_redirect=r.path,
        prefix_rewrite=r.prefix if r.path is None else None,
        response_code=_REDIRECT_CODES.get(r.status, RedirectActionRedirectResponseCode.FOUND),
    )
    if r.regex is not None:
        action.prefix_rewrite = None
        action.regex_rewrite = new(RegexMatchAndSubstitute, pattern=regex(r.regex[0]), substitution=r.regex[1])
    return action


def route_action(r: ir.Route, extra_hash: tuple[ir.HashPolicy, ...] = ()) -> RouteAction:
    """The forwarding part of an outbound route. Shared by the routes that forward alike (a policy's rules
    usually split to the same backends with the same timeout and retries; see ``_shared``): never mutate it.
    Every field of ``r`` that :func:`_route_action` reads must be in its arguments."""
    return _route_action(
        r.clusters,
        r.mirrors,
        r.hash_on or extra_hash,
        r.timeout_ms,
        r.idle_timeout_ms,
        r.retry,
        r.host_rewrite,
        r.path_regex_rewrite,
        r.path_rewrite,
        tuple(repr(m.percent) for m in r.mirrors),
    )


@shared(65_536)
def _route_action(
    clusters: tuple[ir.WeightedCluster, ...],
    mirrors: tuple[ir.Mirror, ...],
    hash_on: tuple[ir.HashPolicy, ...],
    timeout_ms: int | None,
    idle_timeout_ms: int | None,
    retry: ir.Retry | None,
    host_rewrite: str | None,
    path_regex_rewrite: tuple[str, str] | None,
    path_rewrite: tuple[str, str] | None,
    _mirror_percents: tuple[str, ...],
) -> RouteAction:
    """``_mirror_percents``: the floats' reprs, so that 5 and 5.0 (equal as keys) get their own messages."""
    action = new(
        RouteAction,
        request_mirror_policies=[
            new(RouteActionRequestMirrorPolicy, cluster=m.cluster, runtime_fraction=runtime_fraction(m.percent))
            for m in mirrors
        ],
        hash_policy=[hash_policy(h) for h in hash_on],
        timeout=ms(timeout_ms) if timeout_ms is not None else None,
        idle_timeout=ms(idle_timeout_ms) if idle_timeout_ms is not None else None,
        retry_policy=retry_policy(retry) if retry is not None else None,
        host_rewrite_literal=host_rewrite,
    )
    if len(clusters) == 1:
        action.cluster = clusters[0].cluster
    else:
        action.weighted_clusters = new(
            WeightedCluster,
            clusters=[new(WeightedClusterClusterWeight, name=c.cluster, weight=c.weight) for c in clusters],
        )
    if path_regex_rewrite is not None:
        pattern, substitution = path_regex_rewrite
        action.regex_rewrite = new(RegexMatchAndSubstitute, pattern=regex(pattern), substitution=substitution)
    elif path_rewrite is not None:
        kind, value = path_rewrite
        if kind == "prefix":
            action.prefix_rewrite = value
        else:
            action.regex_rewrite = new(
                RegexMatchAndSubstitute, pattern=regex("^.*$"), substitution=value.replace("\\", "\\\\")
            )
    return action


def outbound_route(r: ir.Route, extra_hash: tuple[ir.HashPolicy, ...] = ()) -> Route:
    """One outbound route. ``extra_hash``: hash policies of the target cluster's consistent-hash LB."""
    per_filter: dict[str, Any] = {}
    if r.fault is not None:
        per_filter[fault.FILTER_NAME] = fault.per_route(r.fault)
    if r.cors is not None:
        per_filter[cors.FILTER_NAME] = cors.per_route(r.cors)
    msg = new(
        Route,
        name=r.name,
        match=route_match(r.match),
        metadata=metadata([r.provenance, r.retry.provenance if r.retry else None]),
        typed_per_filter_config=per_filter,
        request_headers_to_add=header_options(r.request_headers),
        request_headers_to_remove=list(r.request_headers.remove),
        response_headers_to_add=header_options(r.response_headers),
        response_headers_to_remove=list(r.response_headers.remove),
        stat_prefix=route_stat_prefix(r),
    )
    if r.redirect is not None:
        msg.redirect = redirect(r.redirect)
    else:
        msg.route = route_action(r, extra_hash)
    return msg


def inbound_route(r: ir.Route, local_cluster: str) -> Route:
    """An inbound route: the request already reached its destination; only per-route limits apply here."""
    per_filter: dict[str, Any] = {}
    if r.rate_limit is not None:
        policy = r.provenance.ref if r.provenance is not None else ""
        per_filter[ratelimit.FILTER_NAME] = ratelimit.per_route(r.rate_limit, route_stat_prefix(r), policy)
    return new(
        Route,
        name=r.name,
        match=route_match(r.match),
        route=new(
            RouteAction,
            cluster=local_cluster,
            timeout=ms(r.timeout_ms) if r.timeout_ms is not None else None,
            idle_timeout=ms(r.idle_timeout_ms) if r.idle_timeout_ms is not None else None,
            rate_limits=ratelimit_global.route_rate_limits(r.global_rate_limit) if r.global_rate_limit else [],
        ),
        metadata=metadata([r.provenance]),
        typed_per_filter_config=per_filter,
        stat_prefix=route_stat_prefix(r),
    )


def route_configuration(
    name: str, routes: list[Route], domains: tuple[str, ...] = ("*",), internal_only_headers: tuple[str, ...] = ()
) -> RouteConfiguration:
    """``internal_only_headers``: removed from requests arriving from outside the sidecar (on the inbound side:
    every request), before any filter runs."""
    return new(
        RouteConfiguration,
        name=name,
        virtual_hosts=[new(VirtualHost, name=stat_name(name), domains=list(domains), routes=routes)],
        # Clusters arrive over CDS before routes (make-before-break); do not reject a route config for a cluster
        # that is momentarily missing, answer 503 instead.
        validate_clusters=False,
        internal_only_headers=list(internal_only_headers),
    )
