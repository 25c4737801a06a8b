"""A fake ADS client (SotW or delta) for tests and benchmarks, over any grpclib ``Channel`` (e.g. ``ChannelFor``).

Requests are built with envoy-data-plane messages (so the server's hand decoder is checked against the library),
or hand-encoded with ``light=True``; responses are decoded fully (each resource parsed to its envoy-data-plane
message) or, with ``light=True``, only their envelope (benchmarks with many clients).

Usage::

    async with ChannelFor([ads], codec=XdsCodec()) as channel:
        async with FakeAdsClient(channel, "node-1") as c:
            await c.request(CLUSTER)
            resp = await c.recv()
            await c.ack(resp)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpclib.client
import grpclib.const

from xds_server import wire
from xds_server.ads_transport import DELTA_PATH, SOTW_PATH, DeltaResponseHeader, SotwResponseHeader


@dataclass
class FakeResponse:
    """One response as the fake client saw it."""

    type_url: str
    version: str
    nonce: str
    #: name -> decoded message (empty with ``light=True``, except names of delta responses -> None)
    resources: dict[str, Any] = field(default_factory=dict)
    #: name -> per-resource version (delta only)
    versions: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    resource_count: int = 0

    @property
    def names(self) -> list[str]:
        return list(self.resources)


def _node(node_id: str) -> bytes:
    return wire.str_field(1, node_id) + wire.str_field(2, "fake")


def _status(message: str) -> bytes:
    return wire.varint(1 << 3) + wire.varint(3) + wire.str_field(2, message)


def encode_sotw_request(
    type_url: str, names: Iterable[str], version: str, nonce: str, node_id: str | None, error: str | None
) -> bytes:
    out = wire.str_field(1, version)
    if node_id is not None:
        out += wire.len_field(2, _node(node_id))
    out += b"".join(wire.len_field(3, n.encode()) for n in names)
    out += wire.str_field(4, type_url) + wire.str_field(5, nonce)
    if error is not None:
        out += wire.len_field(6, _status(error))
    return out


def encode_delta_request(
    type_url: str,
    subscribe: Iterable[str],
    unsubscribe: Iterable[str],
    initial: Mapping[str, str],
    nonce: str,
    node_id: str | None,
    error: str | None,
) -> bytes:
    out = wire.len_field(1, _node(node_id)) if node_id is not None else b""
    out += wire.str_field(2, type_url)
    out += b"".join(wire.len_field(3, n.encode()) for n in subscribe)
    out += b"".join(wire.len_field(4, n.encode()) for n in unsubscribe)
    out += b"".join(wire.len_field(5, wire.str_field(1, k) + wire.str_field(2, v)) for k, v in initial.items())
    out += wire.str_field(6, nonce)
    if error is not None:
        out += wire.len_field(7, _status(error))
    return out


def _parse(type_url: str, body: bytes) -> Any:
    cls: Any = wire.message_class(type_url)
    return cls.FromString(body)


def _classes(request: str) -> tuple[Any, Any, Any]:
    core = wire.envoy_module("envoy.config.core.v3")
    disc = wire.envoy_module("envoy.service.discovery.v3")
    rpc = wire.envoy_module("google.rpc")
    return core.Node, getattr(disc, request), rpc.Status


class FakeAdsClient:
    def __init__(
        self,
        channel: grpclib.client.Channel,
        node_id: str,
        *,
        delta: bool = False,
        light: bool = False,
        send_node_every_time: bool = False,
    ) -> None:
        self.channel = channel
        self.node_id = node_id
        self.delta = delta
        self.light = light
        self.send_node_every_time = send_node_every_time
        #: SotW: the names currently subscribed per type (sent again with every ACK/NACK)
        self.names: dict[str, list[str]] = {}
        self._stream: Any = None
        self._node_sent = False

    async def __aenter__(self) -> FakeAdsClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        ss = grpclib.const.Cardinality.STREAM_STREAM
        reply: Any
        if self.light:
            reply = DeltaResponseHeader if self.delta else SotwResponseHeader
        else:
            disc = wire.envoy_module("envoy.service.discovery.v3")
            reply = disc.DeltaDiscoveryResponse if self.delta else disc.DiscoveryResponse
        self._stream = self.channel.request(DELTA_PATH if self.delta else SOTW_PATH, ss, bytes, reply)
        await self._stream.__aenter__()
        await self._stream.send_request()

    async def close(self) -> None:
        """Half-close and drain; cancel if the server does not finish promptly."""
        s, self._stream = self._stream, None
        if s is None:
            return
        try:
            async with asyncio.timeout(2.0):
                await s.end()
                while await s.recv_message() is not None:
                    pass
                await s.recv_trailing_metadata()
        except (TimeoutError, grpclib.exceptions.GRPCError, grpclib.exceptions.StreamTerminatedError):
            await s.cancel()
        finally:
            await s.__aexit__(None, None, None)

    # ------------------------------------------------------------------ requests

    def _node_once(self) -> str | None:
        if self._node_sent and not self.send_node_every_time:
            return None
        self._node_sent = True
        return self.node_id

    async def send_sotw(
        self,
        type_url: str,
        names: Iterable[str] = (),
        *,
        version: str = "",
        nonce: str = "",
        error: str | None = None,
    ) -> None:
        names = list(names)
        node = self._node_once()
        if self.light:
            data = encode_sotw_request(type_url, names, version, nonce, node, error)
        else:
            Node, DiscoveryRequest, Status = _classes("DiscoveryRequest")
            msg = DiscoveryRequest(
                version_info=version,
                node=Node(id=node, cluster="fake") if node is not None else None,
                resource_names=names,
                type_url=type_url,
                response_nonce=nonce,
                error_detail=Status(code=3, message=error) if error is not None else None,
            )
            data = bytes(msg)
        await self._stream.send_message(data)

    async def send_delta(
        self,
        type_url: str,
        subscribe: Iterable[str] = (),
        unsubscribe: Iterable[str] = (),
        *,
        initial: Mapping[str, str] | None = None,
        nonce: str = "",
        error: str | None = None,
    ) -> None:
        node = self._node_once()
        if self.light:
            data = encode_delta_request(type_url, subscribe, unsubscribe, initial or {}, nonce, node, error)
        else:
            Node, DeltaDiscoveryRequest, Status = _classes("DeltaDiscoveryRequest")
            msg = DeltaDiscoveryRequest(
                node=Node(id=node, cluster="fake") if node is not None else None,
                type_url=type_url,
                resource_names_subscribe=list(subscribe),
                resource_names_unsubscribe=list(unsubscribe),
                initial_resource_versions=dict(initial or {}),
                response_nonce=nonce,
                error_detail=Status(code=3, message=error) if error is not None else None,
            )
            data = bytes(msg)
        await self._stream.send_message(data)

    async def request(self, type_url: str, names: Iterable[str] = (), *, version: str = "") -> None:
        """Subscribe: SotW sends the full name list, delta subscribes to ``names``."""
        names = list(names)
        if self.delta:
            await self.send_delta(type_url, names)
        else:
            self.names[type_url] = names
            await self.send_sotw(type_url, names, version=version)

    async def ack(self, resp: FakeResponse, names: Iterable[str] | None = None) -> None:
        if self.delta:
            await self.send_delta(resp.type_url, nonce=resp.nonce)
            return
        if names is not None:
            self.names[resp.type_url] = list(names)
        await self.send_sotw(resp.type_url, self.names.get(resp.type_url, ()), version=resp.version, nonce=resp.nonce)

    async def nack(self, resp: FakeResponse, error: str, *, previous_version: str = "") -> None:
        if self.delta:
            await self.send_delta(resp.type_url, nonce=resp.nonce, error=error)
            return
        await self.send_sotw(
            resp.type_url, self.names.get(resp.type_url, ()), version=previous_version, nonce=resp.nonce, error=error
        )

    # ------------------------------------------------------------------ responses

    async def recv(self, timeout: float = 5.0) -> FakeResponse:
        async with asyncio.timeout(timeout):
            msg = await self._stream.recv_message()
        if msg is None:
            raise EOFError("the server ended the stream")
        return self._convert(msg)

    async def expect_nothing(self, timeout: float = 0.2) -> None:
        """Assert no response arrives within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                msg = await self._stream.recv_message()
        except TimeoutError:
            return
        raise AssertionError(f"unexpected response: {self._convert(msg) if msg is not None else 'end of stream'}")

    def _convert(self, msg: Any) -> FakeResponse:
        if isinstance(msg, wire.ResponseHeader):
            return FakeResponse(
                msg.type_url,
                msg.version,
                msg.nonce,
                dict.fromkeys(msg.names),
                removed=msg.removed,
                resource_count=msg.resource_count,
            )
        if self.delta:
            out = FakeResponse(msg.type_url, msg.system_version_info, msg.nonce, removed=list(msg.removed_resources))
            for r in msg.resources:
                out.resources[r.name] = _parse(r.resource.type_url, r.resource.value)
                out.versions[r.name] = r.version
        else:
            out = FakeResponse(msg.type_url, msg.version_info, msg.nonce)
            for a in msg.resources:
                m = _parse(a.type_url, a.value)
                out.resources[wire.resource_name(m)] = m
        out.resource_count = len(out.resources)
        return out
