"""The HTTP connection manager with Meshwork's safe defaults (DESIGN.md §5), on every HTTP listener.

* Path hygiene, so routes and RBAC see the path the app will see: ``normalize_path`` (RFC 3986 dot segments,
  percent-decoding of unreserved characters), ``merge_slashes``, and escaped slashes (``%2F``, ``%5C``):
  inbound (the authorization boundary) uses REJECT_REQUEST — an escaped slash is the classic way to make the
  proxy and the app disagree about a path; outbound uses UNESCAPE_AND_REDIRECT — the local app's client follows
  a redirect to the canonical path, and the destination's inbound side enforces again.
  URL fragments: Envoy strips ``#fragment`` from the path by default (there is no HCM field; the runtime guard
  ``envoy.reloadable_features.http_reject_path_with_fragment`` defaults to reject, which is also safe).
* ``headers_with_underscores_action: REJECT_REQUEST`` (``x_user`` vs ``x-user`` smuggling past header rules).
* Timeouts: ``request_headers_timeout`` 10 s (slow-loris), ``stream_idle_timeout`` 5 min, connection
  ``idle_timeout`` 1 h. ``request_timeout`` (whole request must arrive within) is set to 5 min on inbound only:
  it would cut long-lived client streams on outbound where the app chose to stream; inbound, a peer that drips a
  body for 5 min is an attack, not a workload. Routes keep their own (IR) timeouts.
* HTTP/2: ``max_concurrent_streams`` 100, window sizes 64 KiB / 1 MiB.
* ``use_remote_address``: **true inbound** — the TCP peer (another sidecar, authenticated by mTLS) is the real
  client; trusting ``X-Forwarded-For`` there would let a caller choose the address Envoy logs, and Envoy's
  internal/external decision (which drives ``x-envoy-*`` header sanitizing) would follow a spoofable header.
  **false outbound** — the client is our own app over loopback; the sidecar is not an edge and passes the app's
  XFF through unchanged.
* Client certificate details: inbound ``SANITIZE_SET`` with ``uri`` — any caller-supplied
  ``x-forwarded-client-cert`` is dropped and replaced by the verified peer's SPIFFE ID (``URI=...``); outbound
  ``SANITIZE`` (the app must not forge an identity towards the destination).
* ``strip_any_host_port`` so ``Host: svc:80`` and ``Host: svc`` match the same virtual host.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final, Literal

from envoy_data_plane.envoy.config.accesslog.v3 import AccessLog
from envoy_data_plane.envoy.config.core.v3 import (
    Http2ProtocolOptions,
    HttpProtocolOptions,
    HttpProtocolOptionsHeadersWithUnderscoresAction,
)
from envoy_data_plane.envoy.config.listener.v3 import Filter
from envoy_data_plane.envoy.extensions.filters.http.router.v3 import Router
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
    HttpConnectionManager,
    HttpConnectionManagerCodecType,
    HttpConnectionManagerForwardClientCertDetails,
    HttpConnectionManagerPathWithEscapedSlashesAction,
    HttpConnectionManagerSetCurrentClientCertDetails,
    HttpConnectionManagerTracing,
    HttpFilter,
    LocalReplyConfig,
    Rds,
)

from xds_server.serialize import new
from xds_server.translate._common import ads, pack

NAME: Final = "envoy.filters.network.http_connection_manager"
ROUTER: Final = "envoy.filters.http.router"

REQUEST_HEADERS_TIMEOUT: Final = timedelta(seconds=10)
STREAM_IDLE_TIMEOUT: Final = timedelta(minutes=5)
INBOUND_REQUEST_TIMEOUT: Final = timedelta(minutes=5)
CONNECTION_IDLE_TIMEOUT: Final = timedelta(hours=1)
MAX_CONCURRENT_STREAMS: Final = 100


def router() -> HttpFilter:
    return new(HttpFilter, name=ROUTER, typed_config=pack(new(Router)))


def connection_manager(
    *,
    direction: Literal["inbound", "outbound"],
    stat_prefix: str,
    route_config_name: str,
    http_filters: list[HttpFilter],
    access_log: tuple[AccessLog, ...],
    local_reply_config: LocalReplyConfig | None = None,
    tracing: HttpConnectionManagerTracing | None = None,
) -> HttpConnectionManager:
    inbound = direction == "inbound"
    return new(
        HttpConnectionManager,
        codec_type=HttpConnectionManagerCodecType.AUTO,
        stat_prefix=stat_prefix,
        rds=new(Rds, config_source=ads(), route_config_name=route_config_name),
        http_filters=http_filters,
        common_http_protocol_options=new(
            HttpProtocolOptions,
            idle_timeout=CONNECTION_IDLE_TIMEOUT,
            headers_with_underscores_action=HttpProtocolOptionsHeadersWithUnderscoresAction.REJECT_REQUEST,
        ),
        http2_protocol_options=new(
            Http2ProtocolOptions,
            max_concurrent_streams=MAX_CONCURRENT_STREAMS,
            initial_stream_window_size=64 * 1024,
            initial_connection_window_size=1024 * 1024,
        ),
        stream_idle_timeout=STREAM_IDLE_TIMEOUT,
        request_timeout=INBOUND_REQUEST_TIMEOUT if inbound else None,
        request_headers_timeout=REQUEST_HEADERS_TIMEOUT,
        access_log=list(access_log),
        use_remote_address=inbound,
        forward_client_cert_details=(
            HttpConnectionManagerForwardClientCertDetails.SANITIZE_SET
            if inbound
            else HttpConnectionManagerForwardClientCertDetails.SANITIZE
        ),
        set_current_client_cert_details=new(HttpConnectionManagerSetCurrentClientCertDetails, uri=True)
        if inbound
        else None,
        normalize_path=True,
        merge_slashes=True,
        path_with_escaped_slashes_action=(
            HttpConnectionManagerPathWithEscapedSlashesAction.REJECT_REQUEST
            if inbound
            else HttpConnectionManagerPathWithEscapedSlashesAction.UNESCAPE_AND_REDIRECT
        ),
        strip_any_host_port=True,
        local_reply_config=local_reply_config,
        tracing=tracing,
    )


def network_filter(hcm: HttpConnectionManager) -> Filter:
    return new(Filter, name=NAME, typed_config=pack(hcm))
