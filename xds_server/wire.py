"""Hand-written protobuf wire encoding of the xDS envelopes, from cached resource bytes.

envoy-data-plane serializes slowly (DESIGN §3), so the server never builds a ``DiscoveryResponse`` message: every
resource body is serialized once (``CachedResource.body``) and the envelope around it is a few bytes written here.
Requests are decoded by hand too: the server needs a handful of fields and decodes the ``Node`` only once per stream.

Field numbers (checked against ``envoy_data_plane.envoy.service.discovery.v3``, see ``tests/unit/test_ads_wire.py``)::

    google.protobuf.Any       type_url=1 value=2
    DiscoveryRequest          version_info=1 node=2 resource_names=3 type_url=4 response_nonce=5 error_detail=6
    DiscoveryResponse         version_info=1 resources=2 type_url=4 nonce=5
    DeltaDiscoveryRequest     node=1 type_url=2 resource_names_subscribe=3 resource_names_unsubscribe=4
                              initial_resource_versions=5 (map<string,string>) response_nonce=6 error_detail=7
    DeltaDiscoveryResponse    system_version_info=1 resources=2 type_url=4 nonce=5 removed_resources=6
    Resource                  version=1 resource=2 name=3
    google.rpc.Status         code=1 message=2
    config.core.v3.Node       id=1 cluster=2

Pure: no I/O, no asyncio.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xds_server.snapshot import CachedResource, Snapshot, sum_version, type_sum

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class WireError(ValueError):
    """A message could not be decoded."""


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def len_field(num: int, data: bytes) -> bytes:
    """A length-delimited field (string, bytes or message)."""
    return varint(num << 3 | _LEN) + varint(len(data)) + data


def str_field(num: int, s: str) -> bytes:
    return len_field(num, s.encode()) if s else b""


def encode_any(type_url: str, body: bytes) -> bytes:
    return len_field(1, type_url.encode()) + len_field(2, body)


def sotw_entry(r: CachedResource) -> bytes:
    """``DiscoveryResponse.resources`` entry (field 2, an Any) for one resource."""
    return len_field(2, encode_any(r.type_url, r.body))


def delta_entry(r: CachedResource) -> bytes:
    """``DeltaDiscoveryResponse.resources`` entry (field 2, a Resource) for one resource."""
    return len_field(2, str_field(3, r.name) + str_field(1, r.version) + len_field(2, encode_any(r.type_url, r.body)))


def discovery_response(version: str, type_url: str, nonce: str, entries: bytes) -> bytes:
    """A whole ``DiscoveryResponse``; ``entries`` is a concatenation of :func:`sotw_entry` results."""
    return str_field(1, version) + entries + str_field(4, type_url) + str_field(5, nonce)


def delta_discovery_response(
    system_version: str, type_url: str, nonce: str, entries: bytes, removed: Iterable[str] = ()
) -> bytes:
    """A whole ``DeltaDiscoveryResponse``; ``entries`` is a concatenation of :func:`delta_entry` results."""
    return (
        str_field(1, system_version)
        + entries
        + str_field(4, type_url)
        + str_field(5, nonce)
        + b"".join(len_field(6, n.encode()) for n in removed)
    )


# ---------------------------------------------------------------------------------------------------- decoding


def _read_varint(buf: bytes | memoryview, i: int) -> tuple[int, int]:
    shift = 0
    result = 0
    while True:
        if i >= len(buf):
            raise WireError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def iter_fields(buf: bytes | memoryview) -> Iterable[tuple[int, int, int | bytes]]:
    """Yield ``(field number, wire type, value)``; LEN values are bytes, numeric ones ints."""
    mv = memoryview(buf)
    i, n = 0, len(mv)
    while i < n:
        key, i = _read_varint(mv, i)
        num, wt = key >> 3, key & 7
        if wt == _VARINT:
            v, i = _read_varint(mv, i)
            yield num, wt, v
        elif wt == _LEN:
            ln, i = _read_varint(mv, i)
            if i + ln > n:
                raise WireError("truncated length-delimited field")
            yield num, wt, bytes(mv[i : i + ln])
            i += ln
        elif wt == _I64:
            i += 8
            yield num, wt, 0
        elif wt == _I32:
            i += 4
            yield num, wt, 0
        else:
            raise WireError(f"unsupported wire type {wt}")
        if i > n:
            raise WireError("truncated field")


def _s(v: int | bytes) -> str:
    if not isinstance(v, bytes):
        raise WireError("expected a string field")
    return v.decode()


def _b(v: int | bytes) -> bytes:
    if not isinstance(v, bytes):
        raise WireError("expected a length-delimited field")
    return v


@dataclass(slots=True)
class NodeInfo:
    id: str = ""
    cluster: str = ""
    raw: bytes = b""


def decode_node(data: bytes) -> NodeInfo:
    node = NodeInfo(raw=data)
    for num, _, v in iter_fields(data):
        if num == 1:
            node.id = _s(v)
        elif num == 2:
            node.cluster = _s(v)
    return node


def _status_message(data: bytes) -> tuple[int, str]:
    code, message = 0, ""
    for num, _, v in iter_fields(data):
        if num == 1 and isinstance(v, int):
            code = v
        elif num == 2:
            message = _s(v)
    return code, message


@dataclass(slots=True)
class Request:
    """A decoded ``DiscoveryRequest`` or ``DeltaDiscoveryRequest`` (only the fields the server uses).

    ``error`` is the NACK text (``error_detail.message``); ``is_nack`` tells a NACK with an empty message apart.
    """

    type_url: str = ""
    version_info: str = ""
    node: NodeInfo | None = None
    resource_names: list[str] = field(default_factory=list)
    response_nonce: str = ""
    is_nack: bool = False
    error_code: int = 0
    error: str = ""
    # delta only
    subscribe: list[str] = field(default_factory=list)
    unsubscribe: list[str] = field(default_factory=list)
    initial_versions: dict[str, str] = field(default_factory=dict)


def decode_discovery_request(data: bytes) -> Request:
    req = Request()
    for num, _, v in iter_fields(data):
        if num == 1:
            req.version_info = _s(v)
        elif num == 2:
            req.node = decode_node(_b(v))
        elif num == 3:
            req.resource_names.append(_s(v))
        elif num == 4:
            req.type_url = _s(v)
        elif num == 5:
            req.response_nonce = _s(v)
        elif num == 6:
            req.is_nack = True
            req.error_code, req.error = _status_message(_b(v))
    return req


def decode_delta_request(data: bytes) -> Request:
    req = Request()
    for num, _, v in iter_fields(data):
        if num == 1:
            req.node = decode_node(_b(v))
        elif num == 2:
            req.type_url = _s(v)
        elif num == 3:
            req.subscribe.append(_s(v))
        elif num == 4:
            req.unsubscribe.append(_s(v))
        elif num == 5:
            key = value = ""
            for knum, _, kv in iter_fields(_b(v)):
                if knum == 1:
                    key = _s(kv)
                elif knum == 2:
                    value = _s(kv)
            req.initial_versions[key] = value
        elif num == 6:
            req.response_nonce = _s(v)
        elif num == 7:
            req.is_nack = True
            req.error_code, req.error = _status_message(_b(v))
    return req


@dataclass(slots=True)
class ResponseHeader:
    """The envelope of a (Delta)DiscoveryResponse without decoding resource bodies (for light clients)."""

    version: str = ""
    type_url: str = ""
    nonce: str = ""
    names: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    resource_count: int = 0


def decode_response_header(data: bytes, *, delta: bool) -> ResponseHeader:
    h = ResponseHeader()
    for num, _, v in iter_fields(data):
        if num == 1:
            h.version = _s(v)
        elif num == 2:
            h.resource_count += 1
            if delta:
                for rnum, _, rv in iter_fields(_b(v)):
                    if rnum == 3:
                        h.names.append(_s(rv))
        elif num == 4:
            h.type_url = _s(v)
        elif num == 5:
            h.nonce = _s(v)
        elif num == 6 and delta:
            h.removed.append(_s(v))
    return h


# ---------------------------------------------------------------------------------------------------- memo


class PreparedSnapshot:
    """A :class:`Snapshot` plus memoized wire encodings of its resources, shared by every stream that serves it.

    The wildcard (whole-type) SotW entries are joined once per type: with N proxies on one snapshot a push costs
    one join plus N small envelopes.
    """

    __slots__ = ("_all", "_delta", "_diffs", "_sotw", "_versions", "snapshot", "version")

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.version = snapshot.version
        self._sotw: dict[tuple[str, str], bytes] = {}
        self._delta: dict[tuple[str, str], bytes] = {}
        self._all: dict[str, bytes] = {}
        self._versions: dict[str, str] = {}
        self._diffs: dict[tuple[int, str], tuple[PreparedSnapshot, list[CachedResource], list[str]]] = {}

    def diff(self, old: PreparedSnapshot, type_url: str) -> tuple[list[CachedResource], list[str]]:
        """Resources of ``type_url`` changed or added since ``old``, and names removed (memoized: every delta
        stream that was in sync with ``old`` asks the same question)."""
        key = (id(old), type_url)
        hit = self._diffs.get(key)
        if hit is not None and hit[0] is old:
            return hit[1], hit[2]
        before, now = old.resources(type_url), self.resources(type_url)
        changed = [r for n, r in now.items() if (b := before.get(n)) is None or b.version != r.version]
        removed = [n for n in before if n not in now]
        if len(self._diffs) > 8:
            self._diffs.clear()
        self._diffs[key] = (old, changed, removed)
        return changed, removed

    def type_version(self, type_url: str) -> str:
        v = self._versions.get(type_url)
        if v is None:
            v = self._versions[type_url] = self.snapshot.type_version(type_url)
        return v

    def resources(self, type_url: str) -> Mapping[str, CachedResource]:
        return self.snapshot.of_type(type_url)

    def sotw_entry(self, r: CachedResource) -> bytes:
        key = (r.type_url, r.name)
        cur = self.snapshot.of_type(r.type_url).get(r.name)
        if cur is not r:  # a resource from an older snapshot (held back removal): do not memoize
            return sotw_entry(r)
        e = self._sotw.get(key)
        if e is None:
            e = self._sotw[key] = sotw_entry(r)
        return e

    def delta_entry(self, r: CachedResource) -> bytes:
        key = (r.type_url, r.name)
        cur = self.snapshot.of_type(r.type_url).get(r.name)
        if cur is not r:
            return delta_entry(r)
        e = self._delta.get(key)
        if e is None:
            e = self._delta[key] = delta_entry(r)
        return e

    def sotw_all(self, type_url: str) -> bytes:
        e = self._all.get(type_url)
        if e is None:
            e = self._all[type_url] = b"".join(self.sotw_entry(r) for r in self.snapshot.of_type(type_url).values())
        return e


def set_version(resources: Mapping[str, CachedResource]) -> str:
    """Content version of a set of resources; for a whole type it equals :meth:`Snapshot.type_version`."""
    return sum_version(type_sum(resources.values()))


def envoy_module(name: str) -> Any:
    """Import an envoy-data-plane module (``"envoy.config.cluster.v3"``), silencing the pydantic deprecation
    warnings its generated code raises at import time (pytest runs with ``filterwarnings=error``)."""
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return importlib.import_module("envoy_data_plane." + name)


def message_class(type_url: str) -> type:
    """The envoy-data-plane (betterproto2) class of a type URL, to decode a cached body (debug, tests)."""
    module, _, name = type_url.removeprefix("type.googleapis.com/").rpartition(".")
    cls: type = getattr(envoy_module(module), name)
    return cls


def resource_name(msg: object) -> str:
    """The xDS resource name of a decoded message (``cluster_name`` for a ClusterLoadAssignment)."""
    return str(getattr(msg, "cluster_name", None) or getattr(msg, "name", ""))
