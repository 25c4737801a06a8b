"""Local rate limiting (``envoy.filters.http.local_ratelimit``) on the inbound chain, one token bucket per route.

The listener-level filter has no bucket and is disabled; each limited route carries a full config with its own
bucket, enabled and enforced for 100 % of requests, answering with the policy's status. A shadowed limit
(``shadow``) is enabled but enforced for 0 %: Envoy still counts ``rate_limited`` for requests over the limit
and serves them, adding :data:`SHADOW_HEADER` (the policy's ``Kind/namespace/name@generation``) to each such
request, so the access log (field ``rate_limit_shadow``) and the app see which policy would have refused it. The
inbound route configuration strips the header from arriving requests (``internal_only_headers``: every inbound
request is external to the sidecar), so a caller cannot forge it.
"""

from __future__ import annotations

from typing import Final

from envoy_data_plane.envoy.config.core.v3 import HeaderValue, HeaderValueOption, HeaderValueOptionHeaderAppendAction
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
#: Added to a request a shadowed limit would have refused; names the policy.
SHADOW_HEADER: Final = "x-meshwork-shadow-rate-limited"


def http_filter() -> HttpFilter:
    return new(HttpFilter, name=FILTER_NAME, typed_config=pack(new(LocalRateLimit, stat_prefix=STAT_PREFIX)))


def config(rl: ir.RateLimit, stat_prefix: str, policy: str = "") -> LocalRateLimit:
    """``policy``: the ref of the policy the limit comes from (named on requests a shadowed limit counts)."""
    shadow_headers = (
        [
            new(
                HeaderValueOption,
                header=new(HeaderValue, key=SHADOW_HEADER, value=policy or "unknown"),
                append_action=HeaderValueOptionHeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        ]
        if rl.shadow
        else []
    )
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
        request_headers_to_add_when_not_enforced=shadow_headers,
    )


@memoize(4096)
def per_route(rl: ir.RateLimit, stat_prefix: str, policy: str = "") -> Any:
    return pack(config(rl, stat_prefix, policy))
