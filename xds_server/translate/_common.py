"""Small builders shared by the feature modules: config sources, durations, matchers, percentages, typed configs."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import betterproto2
from envoy_data_plane.envoy.config.core.v3 import (
    AggregatedConfigSource,
    ApiVersion,
    ConfigSource,
    RuntimeFractionalPercent,
    TransportSocket,
    TypedExtensionConfig,
)
from envoy_data_plane.envoy.type.matcher.v3 import RegexMatcher, StringMatcher
from envoy_data_plane.envoy.type.v3 import FractionalPercent, FractionalPercentDenominatorType
from envoy_data_plane.google.protobuf import Any

from xds_server import serialize
from xds_server.serialize import new
from xds_server.translate._shared import shared

#: DESIGN §5: per-connection read/write buffer limit on listeners and clusters.
BUFFER_LIMIT_BYTES: Final = 32 * 1024


@shared(1)
def ads() -> ConfigSource:
    """Fetch over the one ADS stream the bootstrap configures."""
    return new(ConfigSource, ads=new(AggregatedConfigSource), resource_api_version=ApiVersion.V3)


def ms(value: int) -> timedelta:
    return timedelta(milliseconds=value)


def pack(msg: betterproto2.Message) -> Any:
    return serialize.pack(msg)


def typed(name: str, msg: betterproto2.Message) -> TypedExtensionConfig:
    return new(TypedExtensionConfig, name=name, typed_config=pack(msg))


def transport_socket(msg: betterproto2.Message) -> TransportSocket:
    return new(TransportSocket, name="envoy.transport_sockets.tls", typed_config=pack(msg))


def regex(pattern: str) -> RegexMatcher:
    # No engine field: ``google_re2`` is deprecated in v3 and RE2 is the only (default) engine.
    return new(RegexMatcher, regex=pattern)


def string_match(kind: str, value: str) -> StringMatcher:
    if kind == "exact":
        return new(StringMatcher, exact=value)
    if kind == "prefix":
        return new(StringMatcher, prefix=value)
    if kind == "regex":
        return new(StringMatcher, safe_regex=regex(value))
    raise ValueError(f"no string match of kind {kind!r}")


def fraction(percent: float) -> FractionalPercent:
    """A 0–100 float as a per-million fraction (keeps two decimals of a percent exactly)."""
    return new(
        FractionalPercent, numerator=round(percent * 10_000), denominator=FractionalPercentDenominatorType.MILLION
    )


def runtime_fraction(percent: float, runtime_key: str = "") -> RuntimeFractionalPercent:
    return new(RuntimeFractionalPercent, default_value=fraction(percent), runtime_key=runtime_key)


def stat_token(text: str) -> str:
    """A stat-name-safe token (Envoy splits stat names on dots)."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in text)
