"""CORS (``envoy.filters.http.cors``): on a listener's filter chain only when one of its routes has a policy; the
policy itself is per route (``typed_per_filter_config``), so other routes are untouched."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from envoy_data_plane.envoy.extensions.filters.http.cors.v3 import Cors, CorsPolicy
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import HttpFilter
from envoy_data_plane.envoy.type.matcher.v3 import StringMatcher
from envoy_data_plane.google.protobuf import Any

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate._common import pack, regex
from xds_server.translate._memo import memoize

FILTER_NAME: Final = "envoy.filters.http.cors"


def http_filters(routes: Iterable[ir.Route]) -> list[HttpFilter]:
    """The CORS filter (first in the chain: it answers preflights) when any route needs it, else nothing."""
    if any(r.cors is not None for r in routes):
        return [new(HttpFilter, name=FILTER_NAME, typed_config=pack(new(Cors)))]
    return []


def _origin(value: str) -> StringMatcher:
    if value == "*":
        return new(StringMatcher, safe_regex=regex(".*"))
    if "*" in value:
        pattern = ".*".join(re.escape(part) for part in value.split("*"))
        return new(StringMatcher, safe_regex=regex(pattern))
    return new(StringMatcher, exact=value)


@memoize(4096)
def per_route(c: ir.Cors) -> Any:
    return pack(
        new(
            CorsPolicy,
            allow_origin_string_match=[_origin(o) for o in c.allow_origins],
            allow_methods=",".join(c.allow_methods),
            allow_headers=",".join(c.allow_headers),
            expose_headers=",".join(c.expose_headers),
            max_age=str(c.max_age_s),
            allow_credentials=c.allow_credentials,
        )
    )
