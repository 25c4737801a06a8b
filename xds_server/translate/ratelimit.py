"""Local rate limiting (``envoy.filters.http.local_ratelimit``) on the inbound chain, one token bucket per route.

The listener-level filter has no bucket and is disabled; each limited route carries a full config with its own
bucket, enabled and enforced for 100 % of requests, answering with the policy's status. A shadowed limit
(``shadow``) is enabled but enforced for 0 %: Envoy still counts ``rate_limited`` for requests over the limit
and serves them.
"""

from __future__ import annotations

from typing import Final

from envoy_data_plane.envoy.extensions.filters.http.local_ratelimit.v3 import LocalRateLimit
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import HttpFilter
from envoy_data_plane.envoy.type.v3 import HttpStatus, StatusCode, TokenBucket
from envoy_data_plane.google.protobuf import Any

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate._common import ms, pack, runtime_fraction
from xds_server.translate._memo import memoize

FILTER_NAME: Final = "envoy.filters.http.local_ratelimit"
STAT_PREFIX: Final = "meshwork_local_rate_limit"


def http_filter() -> HttpFilter:
    return new(HttpFilter, name=FILTER_NAME, typed_config=pack(new(LocalRateLimit, stat_prefix=STAT_PREFIX)))


def config(rl: ir.RateLimit, stat_prefix: str) -> LocalRateLimit:
    return new(
        LocalRateLimit,
        stat_prefix=f"{STAT_PREFIX}_{'shadow_' if rl.shadow else ''}{stat_prefix}",
        status=new(HttpStatus, code=StatusCode(rl.status)),
        token_bucket=new(
            TokenBucket,
            max_tokens=rl.max_tokens,
            tokens_per_fill=rl.tokens_per_fill,
            fill_interval=ms(rl.fill_interval_ms),
        ),
        filter_enabled=runtime_fraction(100.0, "meshwork.local_rate_limit.enabled"),
        filter_enforced=runtime_fraction(0.0 if rl.shadow else 100.0, "meshwork.local_rate_limit.enforced"),
    )


@memoize(4096)
def per_route(rl: ir.RateLimit, stat_prefix: str) -> Any:
    return pack(config(rl, stat_prefix))
