"""Gateway API route matches and filters -> the IR: path, header, query and gRPC method matches (with the rank
the Gateway API orders rules by), header edits, CORS, redirects and URL rewrites. Pure field conversion: which
routes apply to whom is :mod:`mesh_operator.translate.gateway`."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Literal

from mesh_operator.api.gateway import Cors, GRPCRouteMatch, HeaderFilter, HTTPRouteMatch, RequestRedirect, URLRewrite
from xds_server import ir

_KIND: dict[str, Literal["exact", "regex"]] = {"Exact": "exact", "RegularExpression": "regex"}


def cors(c: Cors) -> ir.Cors:
    return ir.Cors(
        allow_origins=tuple(c.allow_origins),
        allow_methods=tuple(c.allow_methods),
        allow_headers=tuple(c.allow_headers),
        expose_headers=tuple(c.expose_headers),
        max_age_s=c.max_age,
        allow_credentials=bool(c.allow_credentials),
    )


def header_edits(h: HeaderFilter) -> ir.HeaderEdits:
    return ir.HeaderEdits(
        set=tuple((x.name.lower(), x.value) for x in h.set),
        add=tuple((x.name.lower(), x.value) for x in h.add),
        remove=tuple(x.lower() for x in h.remove),
    )


def http_match(m: HTTPRouteMatch) -> ir.RouteMatch:
    path = ir.PathMatch("prefix", "/")
    if m.path is not None:
        if m.path.type == "Exact":
            path = ir.PathMatch("exact", m.path.value)
        elif m.path.type == "RegularExpression":
            path = ir.PathMatch("regex", m.path.value)
        elif m.path.value.rstrip("/"):
            # Gateway API prefixes match whole path segments: /foo matches /foo and /foo/bar, never /foobar.
            path = ir.PathMatch("segment_prefix", m.path.value.rstrip("/"))
    return ir.RouteMatch(
        path=path,
        method=m.method,
        headers=tuple(ir.HeaderMatch(h.name.lower(), _KIND[h.type], h.value) for h in m.headers),
        query=tuple(ir.QueryMatch(q.name, _KIND[q.type], q.value) for q in m.query_params),
    )


def http_rank(m: HTTPRouteMatch) -> tuple[object, ...]:
    kind, length = 2, 0
    if m.path is not None:
        kind = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}[m.path.type]
        length = len(m.path.value.rstrip("/") or "/")
    return (kind, -length, 0 if m.method else 1, -len(m.headers), -len(m.query_params))


def grpc_match(m: GRPCRouteMatch) -> ir.RouteMatch:
    headers = tuple(ir.HeaderMatch(h.name.lower(), _KIND[h.type], h.value) for h in m.headers)
    mm = m.method
    if mm is None or (mm.service is None and mm.method is None):
        return ir.RouteMatch(path=ir.PathMatch("prefix", "/"), headers=headers)
    if mm.type == "Exact":
        if mm.service and mm.method:
            return ir.RouteMatch(path=ir.PathMatch("exact", f"/{mm.service}/{mm.method}"), headers=headers)
        if mm.service:
            return ir.RouteMatch(path=ir.PathMatch("prefix", f"/{mm.service}/"), headers=headers)
        return ir.RouteMatch(path=ir.PathMatch("regex", f"/[^/]+/{re.escape(mm.method or '')}"), headers=headers)
    service = mm.service or "[^/]+"
    method = mm.method or "[^/]+"
    return ir.RouteMatch(path=ir.PathMatch("regex", f"/{service}/{method}"), headers=headers)


def redirect(r: ir.Route, rd: RequestRedirect, m: HTTPRouteMatch) -> ir.Route:
    path = prefix = None
    pattern: tuple[str, str] | None = None
    if rd.path is not None:
        if rd.path.type == "ReplaceFullPath":
            path = rd.path.replace_full_path or "/"
        else:
            prefix = rd.path.replace_prefix_match or "/"
            matched = m.path.value.rstrip("/") if m.path is not None and m.path.type == "PathPrefix" else ""
            if prefix == "/" and matched:
                pattern = (f"^{re.escape(matched)}/*", "/")  # /prefix/x -> /x, not //x
    redirect = ir.Redirect(rd.scheme, rd.hostname, rd.port, path, prefix, rd.status_code, pattern)
    return replace(r, redirect=redirect, clusters=(), mirrors=(), fault=None, retry=None, timeout_ms=None)


def rewrite(r: ir.Route, rw: URLRewrite, m: HTTPRouteMatch) -> ir.Route:
    if rw.hostname is not None:
        r = replace(r, host_rewrite=rw.hostname)
    if rw.path is not None:
        if rw.path.type == "ReplaceFullPath":
            r = replace(r, path_rewrite=("full", rw.path.replace_full_path or "/"))
        else:
            to = rw.path.replace_prefix_match or "/"
            matched = m.path.value.rstrip("/") if m.path is not None and m.path.type == "PathPrefix" else ""
            if to == "/" and matched:
                # /prefix/x with "/" must become /x, not //x: strip the prefix and its slashes with a regex.
                r = replace(r, path_regex_rewrite=(f"^{re.escape(matched)}/*", "/"))
            else:
                r = replace(r, path_rewrite=("prefix", to))
    return r
