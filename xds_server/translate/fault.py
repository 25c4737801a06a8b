"""Fault injection (``envoy.filters.http.fault``): an inert filter on the outbound chain, configured per route."""

from __future__ import annotations

from typing import Final

from envoy_data_plane.envoy.extensions.filters.common.fault.v3 import FaultDelay
from envoy_data_plane.envoy.extensions.filters.http.fault.v3 import FaultAbort, HttpFault
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import HttpFilter
from envoy_data_plane.google.protobuf import Any

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate._common import fraction, ms, pack
from xds_server.translate._memo import memoize

FILTER_NAME: Final = "envoy.filters.http.fault"


def http_filter() -> HttpFilter:
    """The listener-level filter does nothing by itself (no delay, no abort); routes opt in."""
    return new(HttpFilter, name=FILTER_NAME, typed_config=pack(new(HttpFault)))


def config(f: ir.Fault) -> HttpFault:
    delay = None
    if f.delay_ms is not None and f.delay_percent > 0:
        delay = new(FaultDelay, fixed_delay=ms(f.delay_ms), percentage=fraction(f.delay_percent))
    abort = None
    if f.abort_status is not None and f.abort_percent > 0:
        abort = new(FaultAbort, http_status=f.abort_status, percentage=fraction(f.abort_percent))
    return new(HttpFault, delay=delay, abort=abort)


@memoize(4096)
def per_route(f: ir.Fault) -> Any:
    """``typed_per_filter_config`` value for a route (the per-route config type is ``HTTPFault`` itself)."""
    return pack(config(f))
