"""Outlier detection (passive health): eject hosts after consecutive 5xx or gateway errors."""

from __future__ import annotations

from envoy_data_plane.envoy.config.cluster.v3 import OutlierDetection

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate._common import ms


def outlier_detection(o: ir.OutlierDetection) -> OutlierDetection:
    gateway = o.consecutive_gateway_errors
    return new(
        OutlierDetection,
        consecutive_5xx=o.consecutive_5xx,
        interval=ms(o.interval_ms),
        base_ejection_time=ms(o.base_ejection_ms),
        max_ejection_percent=o.max_ejection_percent,
        consecutive_gateway_failure=gateway,
        # Envoy does not enforce gateway-failure ejection unless told to (default 0 %).
        enforcing_consecutive_gateway_failure=100 if gateway is not None else None,
    )
