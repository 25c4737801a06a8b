"""The per-class plan of :mod:`xds_server.encode`: each field of a betterproto2 0.9.1 message class with its tag,
default, wire kind and classes, read once from the library's own metadata (``Message._betterproto``), and the
varint helpers. No codegen here: ``xds_server.encode`` compiles encoders from these plans."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any, Final

import betterproto2

# Field kinds of the compiled plan.
_VARINT, _ZIGZAG, _FIXED, _STRING, _BYTES, _MESSAGE = range(6)
_VARINT_TYPES = frozenset(
    {
        betterproto2.TYPE_ENUM,
        betterproto2.TYPE_BOOL,
        betterproto2.TYPE_INT32,
        betterproto2.TYPE_INT64,
        betterproto2.TYPE_UINT32,
        betterproto2.TYPE_UINT64,
    }
)
_FIXED_FMT = {
    betterproto2.TYPE_DOUBLE: ("<d", 1),
    betterproto2.TYPE_FLOAT: ("<f", 5),
    betterproto2.TYPE_FIXED32: ("<I", 5),
    betterproto2.TYPE_FIXED64: ("<Q", 1),
    betterproto2.TYPE_SFIXED32: ("<i", 5),
    betterproto2.TYPE_SFIXED64: ("<q", 1),
}
_PACKED = frozenset(betterproto2.PACKED_TYPES)
_FLOAT_TYPES = frozenset({betterproto2.TYPE_DOUBLE, betterproto2.TYPE_FLOAT})
_SMALL = [bytes([i]) for i in range(128)]


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _SMALL[value]
    if value < -(1 << 63):
        raise ValueError("negative value not representable as a 64-bit varint")
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


# Varints of 0..16383 (lengths of most payloads, most enum and integer values): one list lookup each.
_VARINTS: Final = [_varint(i) for i in range(16384)]


def _kind(proto_type: str) -> int:
    if proto_type in _VARINT_TYPES:
        return _VARINT
    if proto_type in (betterproto2.TYPE_SINT32, betterproto2.TYPE_SINT64):
        return _ZIGZAG
    if proto_type in _FIXED_FMT:
        return _FIXED
    if proto_type == betterproto2.TYPE_STRING:
        return _STRING
    if proto_type == betterproto2.TYPE_BYTES:
        return _BYTES
    if proto_type in (betterproto2.TYPE_MESSAGE, betterproto2.TYPE_MAP):
        return _MESSAGE
    raise NotImplementedError(proto_type)  # pragma: no cover


def _wire(kind: int, proto_type: str) -> int:
    if kind in (_VARINT, _ZIGZAG):
        return 0
    if kind == _FIXED:
        return _FIXED_FMT[proto_type][1]
    return 2


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    default: Any
    key: bytes  # tag for one element (packed lists use a length-delimited tag)
    kind: int
    proto_type: str
    repeated: bool
    packed: bool
    unwrap: Callable[[], type] | None
    map_kinds: tuple[tuple[int, str, bytes, Callable[[], type] | None], ...] | None
    msg_cls: type | None  # the declared class of a message field (of a map's values)


def _tag(number: int, wire: int) -> bytes:
    return _varint((number << 3) | wire)


_PLANS: dict[type, tuple[_Field, ...]] = {}


def _plan(cls: type) -> tuple[_Field, ...]:
    meta = cls._betterproto  # type: ignore[attr-defined]
    fields: list[_Field] = []
    for name, m in meta.meta_by_field_name.items():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            default = meta.default_gen[name]()
        kind = _kind(m.proto_type)
        packed = bool(m.repeated and m.proto_type in _PACKED)
        wire = 2 if packed else _wire(kind, m.proto_type)
        map_kinds = None
        if m.map_meta:
            map_kinds = tuple(
                (
                    _kind(sub.proto_type),
                    sub.proto_type,
                    _varint((num << 3) | _wire(_kind(sub.proto_type), sub.proto_type)),
                    sub.unwrap,
                )
                for num, sub in ((1, m.map_meta[0]), (2, m.map_meta[1]))
            )
        fields.append(
            _Field(
                name,
                default,
                _varint((m.number << 3) | wire),
                kind,
                m.proto_type,
                m.repeated,
                packed,
                m.unwrap,
                map_kinds,
                meta.cls_by_field.get(f"{name}.value" if m.map_meta else name),
            )
        )
    plan = tuple(fields)
    _PLANS[cls] = plan
    return plan
