"""The wire encoder: ``bytes(msg)`` for envoy-data-plane messages without betterproto2's per-call validation.

This module re-implements ``Message.__bytes__`` *for betterproto2 0.9.1 exactly*: same field order
(declaration order, not field-number order), same default-skipping rule (``None`` and values equal to the
field's default factory result; message fields only when ``None``), wrapped well-known types
(``unwrap().from_wrapped(value)``, memoized by value), packed repeated scalars, maps (keys and values always
written) and ``_unknown_fields``. It reads the library's own per-class metadata (``Message._betterproto``) once
per class and *compiles* an encoder for it (generated straight-line Python: one block per field with its tag,
default test and encoding fixed; no per-field dispatch at run time). Small messages are memoized by content:
when their message/list fields are empty, their bytes are a function of their scalar values (and of their
maps' entries), looked up by a tuple built in C; a memo that does not hit is dropped after a review (see
``xds_server._encode_memo``).
``tests/unit/test_serialize_fast_path.py`` proves ``encode(m) == bytes(m)`` on a corpus of every message the
translation produces (Any payloads unpacked) plus edge cases; ``tests/unit/test_serialize_randomized.py`` on
random messages of every one of those types (random field subsets and values, memo hits and near-twins).
Shared sub-messages (:func:`share`, used by ``xds_server.translate._shared``) are memoized by identity. Small
structural children are fused into their parent's encoder (see ``_fused_lines``) and a ``Struct``'s plain string
values are written in its own loop. Figures against upb's ``SerializeToString``: docs/notes/wire2.md, wire4.md.

Upgrading betterproto2: re-read ``Message.__bytes__``, adjust, bump ``_PINNED``, re-run those tests.
"""

from __future__ import annotations

import datetime
import itertools
import operator
import re
import struct
from collections.abc import Callable
from typing import Any, Final, TypeVar

import betterproto2
from envoy_data_plane.google.protobuf import Duration, Value

from xds_server._encode_memo import MEMOS, is_message_map, memo_lines, memo_possible
from xds_server._encode_plan import (
    _BYTES,
    _FIXED_FMT,
    _MESSAGE,
    _PLANS,
    _STRING,
    _VARINT,
    _VARINTS,
    _ZIGZAG,
    _Field,
    _plan,
    _varint,
)

_PINNED: Final = "0.9.1"
if betterproto2.__version__ != _PINNED:  # pragma: no cover - guards an upgrade
    raise ImportError(
        f"xds_server.encode mirrors betterproto2 {_PINNED} Message.__bytes__; found {betterproto2.__version__}. "
        "Re-check the encoder against the new version and update _PINNED (see the module docstring)."
    )

__all__ = ["clear_memos", "encode", "share", "stale_shared"]


def _scalar(kind: int, proto_type: str, unwrap: Callable[[], type] | None, value: Any) -> bytes:
    """The payload of one value (without tag; length-delimited payloads without their length)."""
    if kind == _VARINT:
        return _varint(int(value))
    if kind == _STRING:
        return value.encode("utf-8")  # type: ignore[no-any-return]
    if kind == _MESSAGE:
        if unwrap is not None:
            value = unwrap().from_wrapped(_in_range(unwrap(), value))  # type: ignore[attr-defined]
        return encode(value)
    if kind == _BYTES:
        return bytes(value)
    if kind == _ZIGZAG:
        return _varint(value << 1 if value >= 0 else (value << 1) ^ (~0))
    return struct.pack(_FIXED_FMT[proto_type][0], value)


_WRAPPED: dict[tuple[type, type, Any], bytes] = {}


#: google.protobuf.Duration's range (duration.proto): about +-10,000 years
_MAX_DURATION: Final = datetime.timedelta(seconds=315_576_000_000)


def _in_range(cls: type, value: Any) -> Any:
    """``value``, if it can be the plain value of a ``cls`` wrapper. A Duration beyond protobuf's range encodes in
    binary (int64 seconds) but is invalid: Envoy's JSON parser refuses it, its binary path may take it and wrap."""
    if cls is Duration and isinstance(value, datetime.timedelta) and abs(value) > _MAX_DURATION:
        raise ValueError(f"duration {value} is outside protobuf's Duration range (+-315,576,000,000 s)")
    return value


def _wrapped(unwrap: Callable[[], type], value: Any) -> bytes:
    """Body of a well-known wrapper (Duration, UInt32Value, ...) for a plain value; memoized, they repeat a lot."""
    cls = unwrap()
    key = (cls, type(value), value)
    body = _WRAPPED.get(key)
    if body is None:
        body = encode(cls.from_wrapped(_in_range(cls, value)))  # type: ignore[attr-defined]
        if len(_WRAPPED) > 65_536:
            _WRAPPED.clear()
        _WRAPPED[key] = body
    return body


# Per-class encoders, compiled from the class's plan on first use: straight-line Python, one block per field, with
# the field's tag, default test and encoding decided once (no per-field dispatch or tuple unpacking at run time).
_ENCODERS: dict[type, Callable[[Any], bytes]] = {}


def _length(var: str) -> str:
    """Expression: the varint of ``len(var)`` (one table lookup for the common short payload)."""
    return f"(S[n] if (n := len({var})) < 16384 else V(n))"


# A shared sub-message's bytes are probed by identity right at the call site (see ``share``): no call at all.
# (An entry holds its message alive, so no other live object has its id; b"" falls through to the encoder.)
# A field whose declared class has no shared instance is not probed (``share`` recompiles every encoder when a class
# gets its first shared instance; a value of another class than declared is encoded, just not found by identity).
_ENC_EXPR: Final = "(((sh := SB({x_id})) is not None and sh[1]) or (G(type({x})) or C(type({x})))({x}))"
_ENC_UNSHARED: Final = "(G(type({x})) or C(type({x})))({x})"


def _enc(x: str, cls: type | None) -> str:
    """Expression: the bytes of message ``x`` (of declared class ``cls``)."""
    if cls is not None and cls not in _SHAREABLE:
        return _ENC_UNSHARED.format(x=x)
    return _ENC_EXPR.format(x=x, x_id=f"id({x})")


# A ``Struct``'s values (provenance metadata: one per route, cluster, listener, endpoint) are nearly always plain
# strings: such a ``Value`` is written right in the ``Struct``'s loop (its bytes are the string_value field alone,
# as the library writes it: every other member of the oneof is None); any other ``Value`` goes to its encoder.
_VALUE_LINES: Final = [
    "if type(x) is VALUE and VO(xd := x.__dict__) == VNONE and (s := xd['string_value']) is not None"
    " and not xd['_unknown_fields']:",
    "    sb = s.encode()",
    f"    vb = VSK + {_length('sb')} + sb",
    "else:",
    "    vb = ENCX(x)",
]
_VALUE_OTHERS: Final = ("null_value", "number_value", "bool_value", "struct_value", "list_value")


def _value_env() -> dict[str, Any]:
    plan = _PLANS.get(Value) or _plan(Value)
    assert {f.name for f in plan} == {"string_value", *_VALUE_OTHERS}, "google.protobuf.Value changed"
    (string,) = (f for f in plan if f.name == "string_value")
    return {
        "VALUE": Value,
        "VO": operator.itemgetter(*_VALUE_OTHERS),
        "VNONE": (None,) * len(_VALUE_OTHERS),
        "VSK": string.key,
        "ENCX": (lambda x: encode(x)) if Value not in _SHAREABLE else _shared_or_encode,
    }


def _shared_or_encode(x: Any) -> bytes:
    sh = _SHARED.get(id(x))
    return (sh is not None and sh[1]) or encode(x)


def _payload_lines(
    f_kind: int, proto_type: str, unwrap: str | None, src: str, dst: str, cls: type | None = None
) -> list[str]:
    """Lines computing ``dst`` = the payload of one value ``src`` (length-delimited ones without their length)."""
    if f_kind == _STRING:
        return [f"{dst} = {src}.encode()"]
    if f_kind == _MESSAGE and unwrap is None:
        return [f"{dst} = {_enc(src, cls)}"]
    if f_kind == _MESSAGE:  # a wrapped well-known type: its body memoized per field by plain value
        return [
            f"{dst} = WM{unwrap}.get({src})",
            f"if {dst} is None:",
            f"    {dst} = W({unwrap}, {src})",
            f"    if len(WM{unwrap}) < 4096:",
            f"        WM{unwrap}[{src}] = {dst}",
        ]
    if f_kind == _BYTES:
        return [f"{dst} = bytes({src})"]
    if f_kind == _VARINT:
        return [f"{dst} = S[{src}] if 0 <= {src} < 16384 else V(int({src}))"]
    return [f"{dst} = P({f_kind}, {proto_type!r}, None, {src})"]


def _emit_lines(key: str, f_kind: int, proto_type: str, unwrap: str | None, src: str, cls: type | None) -> list[str]:
    """Lines appending one tagged value ``src`` to the output."""
    lines = _payload_lines(f_kind, proto_type, unwrap, src, "b", cls)
    if f_kind >= _STRING:
        return [*lines, f"out += ({key}, {_length('b')}, b)"]
    return [*lines, f"a({key} + b)"]


def _presence_test(f: _Field, i: int, env: dict[str, Any]) -> str:
    """The ``if`` deciding whether field ``f`` (value in ``v``) is written: the library skips ``None`` and values
    equal to the field's default. For the zero defaults of proto3 scalars and for empty lists / maps that is
    falsiness (-0.0 == 0.0 is skipped by both, NaN written by both); message fields are written unless ``None``."""
    default = f.default
    if default is None or (f.kind == _MESSAGE and not f.repeated and f.map_kinds is None):
        if default is None:
            return "if v is not None:"
    elif isinstance(default, (list, dict, str, bytes, int, float)) and not default:
        return "if v:"
    env[f"D{i}"] = default
    return f"if v is not None and v != D{i}:"


def _wrapped_memo() -> dict[Any, bytes]:
    memo: dict[Any, bytes] = {}
    MEMOS.append(memo)
    return memo


# Fusion: the fields of a small structural child (ClusterEdsClusterConfig, LocalityLbEndpoints, VirtualHost,
# Endpoint, Address, ...) are written straight in its parent's encoder, two levels deep: no call, no lookup of its
# encoder, no entry of its own. Only for a child class without shared instances and with a message field, or a
# scalar-only one that can never have a content memo (an ``Any``: a bytes field); other scalar-only ones keep their
# memo. A value of another class than the declared one goes to its encoder.
# The child's code is the same generated code with its locals and constants renamed apart.
_FUSE_FIELDS: Final = 24
_FUSE_DEPTH: Final = 2
_FUSED = itertools.count()
_LOCALS: Final = frozenset({"d", "out", "a", "v", "b", "n", "k", "x", "kb", "kp", "vb", "e", "sh", "s", "sb", "xd"})
# a quoted field name or proto type (kept), or a name that is not an attribute nor the b of b''
_TOKEN: Final = re.compile(r"'[^']*'|(?<![.\w])[A-Za-z_]\w*(?![\w'])")


def _fusable(cls: type | None, depth: int) -> bool:
    if cls is None or depth >= _FUSE_DEPTH or cls in _SHAREABLE or cls is Value:
        return False
    plan = _PLANS.get(cls) or _plan(cls)
    return len(plan) <= _FUSE_FIELDS and (
        any((f.kind == _MESSAGE and f.unwrap is None and f.map_kinds is None) or is_message_map(f) for f in plan)
        or not memo_possible(plan)  # a scalar-only class that never has a content memo (an Any)
    )


_APPENDS: Final = re.compile(r"(?<![.\w])a\(")


def _body(fields: list[str]) -> list[str]:
    """A message's field blocks with their output list ``out`` around them: ``a`` (its bound ``append``) only
    where a block uses it, and the ``_unknown_fields`` (set by ``Message.__post_init__`` and by ``new()``, nearly
    always ``b""``) only appended when there are some: no call and no join element per message for nothing."""
    uses_a = any(_APPENDS.search(ln) for ln in fields)
    return [
        "out = []",
        *(["a = out.append"] if uses_a else []),
        *fields,
        "if d['_unknown_fields']:",
        "    out.append(d['_unknown_fields'])",
    ]


def _renamed(line: str, names: dict[str, str]) -> str:
    return _TOKEN.sub(lambda m: names.get(m.group(), m.group()), line)


def _fused_lines(cls: type, src: str, env: dict[str, Any], depth: int) -> list[str]:
    """Lines computing ``b`` = the bytes of message ``src`` of class ``cls``, its fields written inline."""
    j = next(_FUSED)
    sub: dict[str, Any] = {}
    lines: list[str] = []
    for i, f in enumerate(_PLANS.get(cls) or _plan(cls)):
        lines += _field_lines(f, i, sub, depth + 1)
    names = {name: f"F{j}{name}" for name in sub} | {name: f"{name}_{j}" for name in _LOCALS}
    env.update({names[name]: value for name, value in sub.items()})
    env[f"FX{j}"] = cls
    return [
        f"if type({src}) is FX{j}:",
        f"    d_{j} = {src}.__dict__",
        *["    " + _renamed(ln, names) for ln in _body(lines)],
        f"    b = b''.join(out_{j})",
        "else:",
        f"    b = {_enc(src, cls)}",
    ]


def _field_lines(f: _Field, i: int, env: dict[str, Any], depth: int = 0) -> list[str]:
    key = f"K{i}"
    env[key] = f.key
    unwrap = None
    if f.unwrap is not None:
        unwrap = f"U{i}"
        env[unwrap] = f.unwrap
        env[f"WM{unwrap}"] = _wrapped_memo()
    if f.map_kinds is not None:
        (kk, kt, kkey, _), (vk, vt, vkey, vun) = f.map_kinds
        env[f"KK{i}"], env[f"VK{i}"] = kkey, vkey
        vunwrap = None
        if vun is not None:
            vunwrap = f"VU{i}"
            env[vunwrap] = vun
            env[f"WM{vunwrap}"] = _wrapped_memo()
        kpart = f"KK{i} + {_length('kb')} + kb" if kk >= _STRING else f"KK{i} + kb"
        prefixed = kk == _STRING and vk >= _STRING
        if prefixed:  # string keys repeat ("meshwork.io", "service", ...): their entry's head is memoized
            env[f"KP{i}"] = _wrapped_memo()
            keys = [
                f"kp = KP{i}.get(k)",
                "if kp is None:",
                *["    " + ln for ln in _payload_lines(kk, kt, None, "k", "kb")],
                f"    kp = {kpart} + VK{i}",
                f"    if len(KP{i}) < 4096:",
                f"        KP{i}[k] = kp",
            ]
        else:
            keys = _payload_lines(kk, kt, None, "k", "kb")
        block = ["for k, x in v.items():", *["    " + ln for ln in keys]]
        if vk == _MESSAGE and vunwrap is None and f.msg_cls is Value:
            block += ["    " + ln for ln in _VALUE_LINES]
            env.update(_value_env())
        elif vk == _MESSAGE and vunwrap is None and _fusable(f.msg_cls, depth):  # a Metadata's Structs
            assert f.msg_cls is not None
            block += ["    " + ln for ln in [*_fused_lines(f.msg_cls, "x", env, depth), "vb = b"]]
        else:
            block += ["    " + ln for ln in _payload_lines(vk, vt, vunwrap, "x", "vb", f.msg_cls)]
        vpart = f"VK{i} + {_length('vb')} + vb" if vk >= _STRING else f"VK{i} + vb"
        entry = f"kp + {_length('vb')} + vb" if prefixed else f"{kpart} + {vpart}"
        block += [f"    e = {entry}", f"    out += ({key}, {_length('e')}, e)"]
    elif f.kind == _MESSAGE and f.unwrap is None and _fusable(f.msg_cls, depth):
        assert f.msg_cls is not None
        src = "x" if f.repeated else "v"
        body = [*_fused_lines(f.msg_cls, src, env, depth), f"out += ({key}, {_length('b')}, b)"]
        block = ["for x in v:", *["    " + ln for ln in body]] if f.repeated else body
    elif f.packed:
        env[f"T{i}"] = f.proto_type
        block = [f"b = b''.join([P({f.kind}, T{i}, None, x) for x in v])", f"out += ({key}, {_length('b')}, b)"]
    elif f.repeated:
        block = ["for x in v:"] + ["    " + ln for ln in _emit_lines(key, f.kind, f.proto_type, unwrap, "x", f.msg_cls)]
    else:
        block = _emit_lines(key, f.kind, f.proto_type, unwrap, "v", f.msg_cls)
    return [f"v = d[{f.name!r}]", _presence_test(f, i, env)] + ["    " + ln for ln in block]


def _recompile(cls: type) -> None:
    """After a memo review (``_encode_memo.review``): ``cls`` is compiled anew on its next use. Its parents keep
    their code (a class whose memo was dropped is not fused into them: code shape is decided at compile time)."""
    _ENCODERS.pop(cls, None)


def _compile(cls: type) -> Callable[[Any], bytes]:
    """Generate, compile and register the encoder of ``cls`` (mirrors ``Message.__bytes__`` of 0.9.1)."""
    env: dict[str, Any] = {
        "S": _VARINTS,
        "V": _varint,
        "G": _ENCODERS.get,
        "C": _compile,
        "W": _wrapped,
        "P": _scalar,
        "SB": _SHARED.get,
    }
    plan = _PLANS.get(cls) or _plan(cls)
    fields: list[str] = []
    for i, f in enumerate(plan):
        fields += _field_lines(f, i, env)
    full = [*_body(fields), "return b''.join(out)"]
    memo = memo_lines(cls, plan, env, _recompile)
    if memo is not None:
        source = "def full(msg, d):\n" + "".join(f"    {ln}\n" for ln in full)
        entry = memo
    else:  # no memo: the field blocks are the entry itself (one call per message, not two)
        source, entry = "", ["d = msg.__dict__", *full]
    if cls in _SHAREABLE:
        env["SH"] = _SHARED
        source += "def encode(msg):\n" + "".join(f"    {ln}\n" for ln in _SHARED_ENTRY)
        source += "def content(msg):\n" + "".join(f"    {ln}\n" for ln in entry)
    else:
        source += "def encode(msg):\n" + "".join(f"    {ln}\n" for ln in entry)
    exec(compile(source, f"<serialize {cls.__module__}.{cls.__qualname__}>", "exec"), env)
    fn: Callable[[Any], bytes] = env["encode"]
    fn.__doc__ = source
    _ENCODERS[cls] = fn
    return fn


# Shared sub-messages: an object the translation hands to many resources (a provenance ``Metadata``, a retry
# policy, a route action ...: see ``xds_server.translate._shared``) is registered by :func:`share`; its bytes are
# computed once and found again by identity (one dict probe at the parent's call site, no call, no walk of its
# fields). The entry holds the message, so its ``id`` cannot be recycled while registered (and a concurrent
# clear by another translating thread costs a miss, never wrong bytes). Valid because a shared message is never
# mutated after :func:`share` (the translation's contract, checked by :func:`stale_shared` in the tests). Only
# classes with a shared instance pay the entry's probe (their encoder is recompiled with it on their first
# :func:`share`).
_SHARED: dict[int, list[Any]] = {}
_SHARED_MAX: Final = 262_144
_SHAREABLE: set[type] = set()
_SHARED_ENTRY: Final = [
    "e = SH.get(id(msg))",
    "if e is None:",
    "    return content(msg)",
    "r = e[1]",
    "if r is None:",
    "    r = e[1] = content(msg)",
    "return r",
]

_M = TypeVar("_M", bound=betterproto2.Message)


def share(msg: _M) -> _M:
    """Register ``msg`` as shared (it must not be mutated from now on): its bytes are computed once."""
    key = id(msg)
    if key not in _SHARED:
        cls = type(msg)
        if cls not in _SHAREABLE:
            _SHAREABLE.add(cls)
            _ENCODERS.clear()  # recompiled: cls's own entry and its parents' call sites probe the shared table
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()  # the translation registers its shared objects again on their next use
        _SHARED[key] = [msg, None]
    return msg


def stale_shared() -> list[str]:
    """Names of shared messages whose memoized bytes are not the library's ``bytes(msg)`` any more (a shared
    message was mutated after :func:`share`); empty when the contract held. For tests: it re-encodes all."""
    return [type(m).__name__ for m, b in list(_SHARED.values()) if b is not None and b != bytes(m)]


def encode(msg: betterproto2.Message) -> bytes:
    """``bytes(msg)`` without per-call pydantic validation; byte-identical for betterproto2 0.9.1."""
    cls = type(msg)
    return (_ENCODERS.get(cls) or _compile(cls))(msg)


def clear_memos() -> None:
    """Forget the sub-message memos, shared messages and wrapped values (tests, benchmarks)."""
    _WRAPPED.clear()
    _SHARED.clear()
    for memo in MEMOS:
        memo.clear()
