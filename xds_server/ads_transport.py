"""The gRPC transport of the ADS server (grpclib): method paths, the codec that sends pre-encoded bytes and decodes
requests by hand, keepalive settings, the peer's SPIFFE identity and a size-bounded receive."""

from __future__ import annotations

from typing import Any

import grpclib.server
from grpclib.config import Configuration
from grpclib.const import Status
from grpclib.encoding.base import CodecBase
from grpclib.exceptions import GRPCError

from xds_server import wire

SOTW_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
DELTA_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024


class SotwRequest:
    """Marker request type: the codec decodes it with :func:`wire.decode_discovery_request`."""

    __xds_decode__ = staticmethod(wire.decode_discovery_request)


class DeltaRequest:
    __xds_decode__ = staticmethod(wire.decode_delta_request)


class SotwResponseHeader:
    """Client-side marker: decode only the envelope of a DiscoveryResponse (benchmarks, light fake clients)."""

    @staticmethod
    def __xds_decode__(data: bytes) -> wire.ResponseHeader:
        return wire.decode_response_header(data, delta=False)


class DeltaResponseHeader:
    @staticmethod
    def __xds_decode__(data: bytes) -> wire.ResponseHeader:
        return wire.decode_response_header(data, delta=True)


class XdsCodec(CodecBase):
    """grpclib codec: ``bytes`` go out as they are (pre-encoded responses); types with ``__xds_decode__`` are
    decoded by hand; anything else is a protobuf message (betterproto2 or upb) encoded/decoded the usual way."""

    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        if isinstance(message, bytes | bytearray | memoryview):
            return bytes(message)
        ser = getattr(message, "SerializeToString", None)
        return ser() if ser is not None else bytes(message)

    def decode(self, data: bytes, message_type: Any) -> Any:
        dec = getattr(message_type, "__xds_decode__", None)
        if dec is not None:
            return dec(data)
        return message_type.FromString(data)


def server_config(*, keepalive_time: float = 30.0, keepalive_timeout: float = 10.0) -> Configuration:
    """grpclib server config with HTTP/2 keepalive pings (a dead proxy's stream is noticed within ~40 s)."""
    return Configuration(
        _keepalive_time=keepalive_time,
        _keepalive_timeout=keepalive_timeout,
        _keepalive_permit_without_calls=True,
        _http2_max_pings_without_data=0,
        _http2_min_sent_ping_interval_without_data=keepalive_time,
    )


def peer_identity(stream: grpclib.server.Stream[Any, Any]) -> str | None:
    """The first URI SAN of the client certificate (SPIFFE ID), or None without (verified) TLS."""
    try:
        cert = stream.peer.cert()
    except Exception:  # pragma: no cover - transport gone
        return None
    if not cert:
        return None
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "URI":
            return str(value)
    return None


async def recv_bounded(stream: grpclib.server.Stream[Any, Any], limit: int) -> bytes | None:
    """Receive one message's bytes, refusing (before buffering) any larger than ``limit``.

    grpclib has no max message size; this reads the gRPC frame header from its protocol stream (private
    ``_stream`` attribute, grpclib 0.4.x) and falls back to ``recv_message`` if that changes.
    """
    inner = getattr(stream, "_stream", None)
    if inner is None or not hasattr(inner, "recv_data"):  # pragma: no cover - grpclib changed
        msg = await stream.recv_message()
        return None if msg is None else bytes(msg)
    meta = await inner.recv_data(5)
    if not meta:
        return None
    if meta[0]:
        raise GRPCError(Status.UNIMPLEMENTED, "compressed messages are not supported")
    size = int.from_bytes(meta[1:5], "big")
    if size > limit:
        raise GRPCError(Status.RESOURCE_EXHAUSTED, f"request of {size} bytes exceeds the limit of {limit}")
    data: bytes = await inner.recv_data(size)
    return data
