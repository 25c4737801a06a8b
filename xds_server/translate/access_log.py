"""File access logs in text or JSON, naming the route, the caller's SPIFFE ID and the policies involved.

Provenance in each HTTP line: ``route`` (``%ROUTE_NAME%``), ``policies`` (the route's
``metadata.filter_metadata["meshwork.io"].policies``), ``details`` (``%RESPONSE_CODE_DETAILS%``: a denial reads
``rbac_access_denied_matched_policy[Kind/ns/name@gen#rule]``) and what shadowed policies would have done:
``rbac_shadow_deny`` (the AccessPolicy rule a shadowed Deny matched), ``rbac_shadow_allow`` (``denied`` when no
shadowed Allow rule matched), ``jwt_shadow_deny`` (the shadowed AuthenticationPolicy that would have refused the
token) and ``rate_limit_shadow`` (the policy whose shadowed local rate limit would have refused the request) and
``global_rate_limit_shadow`` (the policy whose shadowed global rate limit would have refused it, ``Kind/ns/name``).
"""

from __future__ import annotations

from typing import Final

from envoy_data_plane.envoy.config.accesslog.v3 import AccessLog
from envoy_data_plane.envoy.config.core.v3 import DataSource, SubstitutionFormatString
from envoy_data_plane.envoy.extensions.access_loggers.file.v3 import FileAccessLog
from envoy_data_plane.google.protobuf import Struct, Value

from xds_server import ir
from xds_server.serialize import new
from xds_server.translate._common import pack
from xds_server.translate._memo import memoize
from xds_server.translate.metadata import NAMESPACE, POLICIES_KEY
from xds_server.translate.ratelimit import SHADOW_HEADER as RATE_LIMIT_SHADOW_HEADER
from xds_server.translate.ratelimit_global_shadow import NAMESPACE as GLOBAL_SHADOW_NS
from xds_server.translate.ratelimit_global_shadow import POLICY_KEY as GLOBAL_SHADOW_KEY

_RBAC = "envoy.filters.http.rbac"
#: The rule prefix of the JWT shadow RBAC filter (``jwt.py`` uses it): its metadata is
#: ``<prefix>shadow_effective_policy_id``.
JWT_SHADOW_PREFIX: Final = "jwt_shadow_"

HTTP_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("start_time", "%START_TIME%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("status", "%RESPONSE_CODE%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("details", "%RESPONSE_CODE_DETAILS%"),
    ("duration_ms", "%DURATION%"),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("downstream_remote", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("peer_spiffe_id", "%DOWNSTREAM_PEER_URI_SAN%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("route", "%ROUTE_NAME%"),
    ("policies", f"%METADATA(ROUTE:{NAMESPACE}:{POLICIES_KEY})%"),
    ("rbac_shadow_deny", f"%DYNAMIC_METADATA({_RBAC}:shadow_deny_shadow_effective_policy_id)%"),
    ("rbac_shadow_allow", f"%DYNAMIC_METADATA({_RBAC}:shadow_allow_shadow_engine_result)%"),
    ("jwt_shadow_deny", f"%DYNAMIC_METADATA({_RBAC}:{JWT_SHADOW_PREFIX}shadow_effective_policy_id)%"),
    ("rate_limit_shadow", f"%REQ({RATE_LIMIT_SHADOW_HEADER.upper()})%"),
    ("global_rate_limit_shadow", f"%DYNAMIC_METADATA({GLOBAL_SHADOW_NS}:{GLOBAL_SHADOW_KEY})%"),
)

TCP_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("start_time", "%START_TIME%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("details", "%CONNECTION_TERMINATION_DETAILS%"),
    ("duration_ms", "%DURATION%"),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("downstream_remote", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("peer_spiffe_id", "%DOWNSTREAM_PEER_URI_SAN%"),
)


def _format(settings: ir.AccessLogSettings, fields: tuple[tuple[str, str], ...]) -> SubstitutionFormatString:
    if settings.format == "json":
        return new(
            SubstitutionFormatString,
            json_format=new(Struct, fields={k: new(Value, string_value=v) for k, v in fields}),
        )
    line = " ".join(f"{k}={v}" for k, v in fields) + "\n"
    return new(SubstitutionFormatString, text_format_source=new(DataSource, inline_string=line))


@memoize(64)
def access_logs(settings: ir.AccessLogSettings, kind: str = "http") -> tuple[AccessLog, ...]:
    """The access logs of an HTTP connection manager (``kind="http"``) or a TCP proxy (``kind="tcp"``)."""
    if not settings.enabled:
        return ()
    fields = HTTP_FIELDS if kind == "http" else TCP_FIELDS
    cfg = new(FileAccessLog, path=settings.path, log_format=_format(settings, fields))
    return (new(AccessLog, name="envoy.access_loggers.file", typed_config=pack(cfg)),)
