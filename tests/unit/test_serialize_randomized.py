"""Randomized byte-identity proof of ``xds_server.serialize.encode``: random messages of every type the translation
generates, with random field values, encode to exactly the library's ``bytes(msg)``, cold and from the memos.

The corpus of ``test_serialize_fast_path`` fixes *which* messages we produce; this one varies their *content*: any
subset of fields set (oneofs respected), strings with non-ASCII text, integers across their whole range
(negatives, varint boundaries), floats including -0.0, NaN and infinities, every enum member, wrapped values
(durations, UInt32Value ...), repeated fields, maps, and nesting of the generated types. Each message is encoded
with cleared caches, then again (memo hits), then alongside near-twins that differ in one value, so a memo that
confused two contents would show.
"""

from __future__ import annotations

import dataclasses
import math
import random
import warnings
from datetime import timedelta
from typing import Any

import betterproto2
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_serialize_fast_path import CORPUS
from xds_server import serialize

# The message types the translation generates (tops and everything inside them, Any payloads unpacked).
TYPES: tuple[type, ...] = tuple(sorted({type(m) for m in CORPUS}, key=lambda c: f"{c.__module__}.{c.__qualname__}"))
_KNOWN = frozenset(TYPES)

_INT_RANGES = {
    betterproto2.TYPE_INT32: (-(2**31), 2**31 - 1),
    betterproto2.TYPE_SINT32: (-(2**31), 2**31 - 1),
    betterproto2.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    betterproto2.TYPE_INT64: (-(2**63), 2**63 - 1),
    betterproto2.TYPE_SINT64: (-(2**63), 2**63 - 1),
    betterproto2.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    betterproto2.TYPE_UINT32: (0, 2**32 - 1),
    betterproto2.TYPE_FIXED32: (0, 2**32 - 1),
    betterproto2.TYPE_UINT64: (0, 2**64 - 1),
    betterproto2.TYPE_FIXED64: (0, 2**64 - 1),
}
_WRAPPER_RANGES = {
    "UInt32Value": (0, 2**32 - 1),
    "Int32Value": (-(2**31), 2**31 - 1),
    "UInt64Value": (0, 2**64 - 1),
    "Int64Value": (-(2**63), 2**63 - 1),
}
_TEXT = ["", "a", "svc-0.bench|80|v1", "é", "日本", "x" * 130, "/api/r0", "5xx,reset", "\x00", "spiffe://mesh/ns/sa"]


def _int(rng: random.Random, lo: int, hi: int) -> int:
    edges = [lo, hi, 0, 1, 127, 128, 16383, 16384, 2**21, -1]
    pool = [e for e in edges if lo <= e <= hi]
    return rng.choice(pool) if rng.random() < 0.5 else rng.randint(lo, hi)


def _float(rng: random.Random, single: bool) -> float:
    special = [0.0, -0.0, 1.0, -1.5, 0.1, math.inf, -math.inf, math.nan]
    if rng.random() < 0.5:
        return rng.choice(special)
    return rng.uniform(-1e6, 1e6) if single else rng.uniform(-1e300, 1e300)


def _scalar(rng: random.Random, proto_type: str, py_type: Any) -> Any:
    if proto_type == betterproto2.TYPE_ENUM:
        return rng.choice(list(py_type))
    if proto_type == betterproto2.TYPE_BOOL:
        return rng.random() < 0.5
    if proto_type in _INT_RANGES:
        return _int(rng, *_INT_RANGES[proto_type])
    if proto_type in (betterproto2.TYPE_FLOAT, betterproto2.TYPE_DOUBLE):
        return _float(rng, proto_type == betterproto2.TYPE_FLOAT)
    if proto_type == betterproto2.TYPE_STRING:
        return rng.choice(_TEXT) if rng.random() < 0.7 else "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(5))
    if proto_type == betterproto2.TYPE_BYTES:
        return bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 40)))
    raise NotImplementedError(proto_type)


def _wrapped(rng: random.Random, unwrap: Any, py_type: Any) -> Any:
    """A plain value of a wrapped well-known type, or ``dataclasses.MISSING`` for a type we do not generate."""
    name = unwrap().__name__
    if py_type is timedelta:
        return timedelta(seconds=_int(rng, 0, 10**6), microseconds=rng.choice([0, 1, 999_999, 500_000]))
    if name in _WRAPPER_RANGES:
        return _int(rng, *_WRAPPER_RANGES[name])
    if name == "BoolValue":
        return rng.random() < 0.5
    if name in ("DoubleValue", "FloatValue"):
        return _float(rng, name == "FloatValue")
    if name == "StringValue":
        return rng.choice(_TEXT)
    return dataclasses.MISSING  # Timestamp, BytesValue ...: not in what we generate


def random_message(rng: random.Random, cls: type, depth: int = 0) -> Any:
    """A message of ``cls`` with a random subset of its fields set to random values (one member per oneof)."""
    meta = cls._betterproto  # type: ignore[attr-defined]
    kwargs: dict[str, Any] = {}
    groups: set[str] = set()
    names = list(meta.meta_by_field_name)
    rng.shuffle(names)  # construction order must not matter
    for name in names:
        f = meta.meta_by_field_name[name]
        if rng.random() > 0.35 or (f.group and f.group in groups):
            continue
        py_type = meta.cls_by_field[name]
        value: Any
        if f.map_meta:
            ktype, vtype = f.map_meta[0].proto_type, f.map_meta[1].proto_type
            vcls = meta.cls_by_field[f"{name}.value"]
            if vtype == betterproto2.TYPE_MESSAGE and (vcls not in _KNOWN or depth >= 3):
                continue
            value = {}
            for _ in range(rng.randint(0, 3)):
                k = _scalar(rng, ktype, None)
                value[k] = (
                    random_message(rng, vcls, depth + 1)
                    if vtype == betterproto2.TYPE_MESSAGE
                    else _scalar(rng, vtype, vcls)
                )
        elif f.proto_type == betterproto2.TYPE_MESSAGE and f.unwrap is not None:
            value = _wrapped(rng, f.unwrap, py_type)
            if value is dataclasses.MISSING:
                continue
        elif f.proto_type == betterproto2.TYPE_MESSAGE:
            if py_type not in _KNOWN or depth >= 3:
                continue
            if f.repeated:
                value = [random_message(rng, py_type, depth + 1) for _ in range(rng.randint(0, 3))]
            else:
                value = random_message(rng, py_type, depth + 1)
        elif f.repeated:
            value = [_scalar(rng, f.proto_type, py_type) for _ in range(rng.randint(0, 4))]
        else:
            value = _scalar(rng, f.proto_type, py_type)
        if f.group:
            groups.add(f.group)
        kwargs[name] = value
    return serialize.new(cls, **kwargs)


def _twin(rng: random.Random, msg: Any) -> Any:
    """``msg`` with one scalar field set to a different value of equal hash where one exists (1 / True,
    0.0 / -0.0), else to another random value: what a content memo must keep apart. The field may be a member of
    a oneof that is set (a ``Value``'s number, a route's cluster name ...: the member stays the same) or a wrapped
    well-known type (a Duration, a UInt32Value, a DoubleValue ...: the per-field memos are keyed by plain value)."""
    meta = type(msg)._betterproto
    d = dict(msg.__dict__)
    scalars = [
        n
        for n, f in meta.meta_by_field_name.items()
        if not f.map_meta
        and not f.repeated
        and (f.proto_type != betterproto2.TYPE_MESSAGE or f.unwrap is not None)
        and (not f.group or d[n] is not None)
        and (f.unwrap is None or d[n] is not None)
    ]
    if scalars:
        name = rng.choice(scalars)
        f = meta.meta_by_field_name[name]
        old = d[name]
        if isinstance(old, float) and old == 0.0:
            d[name] = -old if rng.random() < 0.5 else 5e-324
        elif isinstance(old, bool) and f.proto_type != betterproto2.TYPE_BOOL:
            d[name] = int(old)
        elif f.unwrap is not None:
            if isinstance(old, bool):
                d[name] = not old
            else:
                twin = _wrapped(rng, f.unwrap, meta.cls_by_field[name])
                d[name] = old if twin is dataclasses.MISSING else twin
        else:
            d[name] = _scalar(rng, f.proto_type, meta.cls_by_field[name])
    d.pop("_unknown_fields", None)
    return serialize.new(type(msg), **d)


def library_bytes(msg: Any) -> bytes:
    """``bytes(msg)``; random messages may set deprecated fields, which the library warns about."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return bytes(msg)


def test_the_randomized_types_are_the_generated_resource_types() -> None:
    names = {c.__name__ for c in TYPES}
    for top in ("Listener", "RouteConfiguration", "Cluster", "ClusterLoadAssignment", "HttpConnectionManager"):
        assert top in names
    assert len(TYPES) > 40


@settings(max_examples=40, deadline=None, database=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_random_messages_of_every_generated_type_encode_to_the_librarys_bytes(seed: int) -> None:
    rng = random.Random(seed)
    serialize.clear_caches()
    messages = [random_message(rng, rng.choice(TYPES)) for _ in range(12)]
    cold = [serialize.encode(m) for m in messages]
    assert cold == [library_bytes(m) for m in messages]
    # Again, now from the memos, interleaved with near-twins that must not hit the same memo entry.
    for m, expected in zip(messages, cold, strict=True):
        twin = _twin(rng, m)
        assert serialize.encode(twin) == library_bytes(twin)
        assert serialize.encode(m) == expected


@settings(max_examples=15, deadline=None, database=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_real_resources_with_random_values_inside_encode_to_the_librarys_bytes(seed: int) -> None:
    """The real top-level resources, each with one random sub-message replaced by a random one of its type."""
    rng = random.Random(seed)
    serialize.clear_caches()
    tops = [m for m in CORPUS if type(m).__name__ in ("Listener", "RouteConfiguration", "Cluster")]
    for top in rng.sample(tops, min(6, len(tops))):
        d = dict(top.__dict__)
        d.pop("_unknown_fields", None)
        meta = type(top)._betterproto
        fields = [
            n
            for n, f in meta.meta_by_field_name.items()
            if f.proto_type == betterproto2.TYPE_MESSAGE
            and not f.repeated
            and not f.map_meta
            and f.unwrap is None
            and meta.cls_by_field[n] in _KNOWN
        ]
        name = rng.choice(fields)
        if meta.meta_by_field_name[name].group:
            continue
        d[name] = random_message(rng, meta.cls_by_field[name])
        msg = serialize.new(type(top), **d)
        assert serialize.encode(msg) == library_bytes(msg)
        assert serialize.encode(top) == library_bytes(top)
