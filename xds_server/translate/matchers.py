"""Request matchers shared by routes and RBAC: paths, headers (incl. ``:method``) and query parameters."""

from __future__ import annotations

from envoy_data_plane.envoy.config.route.v3 import HeaderMatcher, QueryParameterMatcher, RouteMatch
from envoy_data_plane.envoy.type.matcher.v3 import PathMatcher, StringMatcher

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate._common import regex, string_match
from xds_server.translate._shared import shared


def header(m: ir.HeaderMatch) -> HeaderMatcher:
    if m.kind == "present":
        return new(HeaderMatcher, name=m.name, present_match=True, invert_match=m.invert)
    return new(HeaderMatcher, name=m.name, string_match=string_match(m.kind, m.value), invert_match=m.invert)


def method(value: str) -> HeaderMatcher:
    return new(HeaderMatcher, name=":method", string_match=string_match("exact", value.upper()))


def query(m: ir.QueryMatch) -> QueryParameterMatcher:
    if m.kind == "present":
        return new(QueryParameterMatcher, name=m.name, present_match=True)
    return new(QueryParameterMatcher, name=m.name, string_match=string_match(m.kind, m.value))


def path(m: ir.PathMatch, *, ignore_case: bool = False) -> PathMatcher:
    """For RBAC ``url_path``: matched on the path without query, after HCM normalization."""
    if ignore_case and m.kind == "exact":
        return new(PathMatcher, path=new(StringMatcher, exact=m.value, ignore_case=True))
    if ignore_case and m.kind == "prefix":
        return new(PathMatcher, path=new(StringMatcher, prefix=m.value, ignore_case=True))
    kind = "prefix" if m.kind == "segment_prefix" else m.kind
    return new(PathMatcher, path=string_match(kind, m.value))


@shared(65_536)
def route_match(m: ir.RouteMatch) -> RouteMatch:
    """Shared (one object per match, see ``_shared``): never mutate it."""
    headers = [header(h) for h in m.headers]
    if m.method is not None:
        headers.insert(0, method(m.method))
    queries = [query(q) for q in m.query]
    p = m.path
    if p.kind == "exact":
        return new(RouteMatch, path=p.value, headers=headers, query_parameters=queries)
    if p.kind == "prefix":
        return new(RouteMatch, prefix=p.value, headers=headers, query_parameters=queries)
    if p.kind == "segment_prefix":
        return new(RouteMatch, path_separated_prefix=p.value, headers=headers, query_parameters=queries)
    return new(RouteMatch, safe_regex=regex(p.value), headers=headers, query_parameters=queries)
