"""The one module that works around envoy-data-plane / betterproto2 internals: serialization, fast construction,
proto-JSON. Pinned to betterproto2 0.9.1 (:mod:`xds_server.encode` refuses any other version on import).

Why: ``bytes(msg)`` in betterproto2 0.9.1 re-validates every message with a freshly built pydantic
``SchemaValidator`` (``Message._validate``) on every call, recursively, then encodes through ``BytesIO`` and
several helper calls per field: ~0.6 ms per cluster (DESIGN.md §3). Constructing a message validates every field
too (pydantic dataclass ``__init__``): 3/4 of the translation time. Our messages are built by typed code
(mypy --strict, the constructor signature is kept by :func:`new`) from a validated IR; re-validating buys nothing.

* :func:`encode` (:mod:`xds_server.encode`) re-implements ``Message.__bytes__`` without the validation.
* :func:`new` builds a message without pydantic validation (same ``__dict__`` as a validated one).
* :func:`proto_dict` is ``to_dict`` with the .proto field names (betterproto2's casings mangle ``consecutive_5xx``).

Upgrading betterproto2: re-read ``Message.__bytes__``, ``to_dict`` and the pydantic dataclass ``__init__``,
adjust, bump ``xds_server.encode._PINNED``, re-run the tests.

Caching: :func:`cached_resource` memoizes the serialized form per message *object* (bounded, keyed by identity,
holding a reference so ids cannot be recycled); :func:`resource` does not cache (its callers memoize per IR).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

import betterproto2
import pydantic.dataclasses
from envoy_data_plane.google.protobuf import Any as AnyMsg
from envoy_data_plane.message_pool import default_message_pool

from xds_server import _to_dict_speedups
from xds_server.encode import clear_memos, encode
from xds_server.snapshot import CachedResource

__all__ = ["cached_resource", "clear_caches", "encode", "new", "pack", "proto_dict", "resource", "type_url_of"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class _EmptyList(list[Any]):
    """The one empty list of every unset repeated field of a message built by :func:`new` (equal to ``[]``).

    A fresh ``[]`` per unset field was most of :func:`new`'s allocations and, in the encoder, a cache miss per
    field when it tests the field's emptiness (a cluster has ~10 such fields; wire6: ~8 % of a cold encode).
    Sharing one is safe only while nobody mutates it, so it refuses every in-place change: assign a new list
    (``msg.field = [...]`` or ``new(cls, field=[...])``) instead of appending to an unset one."""

    __slots__ = ()

    def _frozen(self, *_args: Any, **_kwargs: Any) -> Any:
        raise TypeError("an unset repeated field of a message built by serialize.new() is shared: assign a new list")

    append = extend = insert = remove = pop = clear = sort = reverse = _frozen
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _frozen


class _EmptyDict(dict[Any, Any]):
    """The one empty dict of every unset map field of a message built by :func:`new` (see :class:`_EmptyList`)."""

    __slots__ = ()

    def _frozen(self, *_args: Any, **_kwargs: Any) -> Any:
        raise TypeError("an unset map field of a message built by serialize.new() is shared: assign a new dict")

    update = setdefault = pop = popitem = clear = _frozen
    __setitem__ = __delitem__ = __ior__ = _frozen


_EMPTY: dict[Any, Any] = {list: _EmptyList(), dict: _EmptyDict()}
_TEMPLATES: dict[type, tuple[dict[str, Any], frozenset[str]]] = {}


def _template(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    if not getattr(cls, "__pydantic_complete__", True):
        # Pydantic builds a message class's schema lazily on first validated construction; complete it now so
        # ``bytes(msg)`` / ``to_dict`` (which validate) work on messages built here.
        pydantic.dataclasses.rebuild_dataclass(cls)
    fixed: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        for f in dataclasses.fields(cls):
            factory = f.default_factory
            assert factory is not dataclasses.MISSING
            fixed[f.name] = _EMPTY[factory] if factory in _EMPTY else factory()
    fixed["_unknown_fields"] = b""
    entry = (fixed, frozenset(f.name for f in dataclasses.fields(cls)))
    _TEMPLATES[cls] = entry
    return entry


def new(cls: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``cls(**kwargs)`` without pydantic validation (~20x faster), type-checked against ``cls``'s signature.

    betterproto2 0.9.1 messages are pydantic dataclasses whose ``__init__`` validates every field (and oneof
    groups) on construction: 3/4 of the translation time. The translation is typed and builds from a validated IR,
    so it constructs with this instead. The instance equals a validated one built from the same values (its
    ``__dict__`` holds every field plus ``_unknown_fields``), except that its unset repeated and map fields all
    hold one shared empty list / dict that refuses in-place changes (:class:`_EmptyList`); ``bytes(msg)`` (which
    validates) is used on such messages by the tests, so a wrongly typed value still fails there.
    """
    if args:
        raise TypeError("messages take keyword arguments only")
    klass: Any = cls
    entry = _TEMPLATES.get(klass)
    if entry is None:
        entry = _template(klass)
    fixed, names = entry
    obj: Any = object.__new__(klass)
    d = obj.__dict__
    d.update(fixed)
    for k in kwargs:
        if k not in names:
            raise TypeError(f"{klass.__name__} has no field {k!r}")
    d.update(kwargs)
    result: _T = obj
    return result


def _field_name(name: str) -> str:
    return name


def proto_dict(msg: betterproto2.Message) -> dict[str, Any]:
    """Proto-JSON of ``msg`` with the .proto field names (``consecutive_5xx``), as Envoy's docs and YAML use.

    betterproto2's ``Casing.SNAKE`` re-snakes names (``consecutive_5_xx``, which Envoy rejects) and
    ``Casing.CAMEL`` differs from protobuf's json_name (``consecutive5Xx``). Generated Python field names are
    the .proto names (no envoy field needs keyword mangling), and 0.9.1's ``to_dict`` only calls ``casing(name)``,
    so an identity function gives the exact proto names; nested ``Any`` values are unpacked with ``@type``.
    """
    _to_dict_speedups.install()
    casing: Any = _field_name
    out: dict[str, Any] = msg.to_dict(casing=casing)
    return out


def type_url_of(msg: betterproto2.Message) -> str:
    """``type.googleapis.com/<full proto name>`` of a generated message (it must be registered by its module)."""
    url: str = default_message_pool.type_to_url[type(msg)]
    return url


def pack(msg: betterproto2.Message) -> AnyMsg:
    """``Any.pack(msg)`` through the fast encoder."""
    return new(AnyMsg, type_url=type_url_of(msg), value=encode(msg))


class _IdentityCache:
    """Serialized resources keyed by message identity, bounded, approximately LRU.

    Two generations of plain dicts: entries live in ``young``; when it fills up it becomes ``old`` (the previous
    ``old`` is dropped) and a hit in ``old`` is promoted. A lookup is one or two dict probes, cheaper than an
    ``OrderedDict`` LRU, which matters at tens of thousands of resources per snapshot. Entries hold the message,
    so its ``id`` cannot be recycled while cached.
    """

    def __init__(self, maxsize: int) -> None:
        self.half = max(1, maxsize // 2)
        self.young: dict[int, tuple[object, CachedResource]] = {}
        self.old: dict[int, tuple[object, CachedResource]] = {}

    def get(self, obj: object) -> CachedResource | None:
        key = id(obj)
        hit = self.young.get(key)
        if hit is not None and hit[0] is obj:
            return hit[1]
        hit = self.old.get(key)
        if hit is not None and hit[0] is obj:
            self.put(obj, hit[1])
            return hit[1]
        return None

    def put(self, obj: object, value: CachedResource) -> None:
        if len(self.young) >= self.half:
            self.old, self.young = self.young, {}
        self.young[id(obj)] = (obj, value)

    def clear(self) -> None:
        self.young.clear()
        self.old.clear()


_RESOURCES = _IdentityCache(400_000)


def resource(type_url: str, name: str, msg: betterproto2.Message) -> CachedResource:
    """The serialized, versioned form of one top-level resource (no caching: the caller memoizes)."""
    return CachedResource.of(type_url, name, encode(msg))


def cached_resource(type_url: str, name: str, msg: betterproto2.Message) -> CachedResource:
    """The serialized, versioned form of one top-level resource; each message object is serialized once."""
    hit = _RESOURCES.get(msg)
    if hit is not None and hit.name == name and hit.type_url == type_url:
        return hit
    res = CachedResource.of(type_url, name, encode(msg))
    _RESOURCES.put(msg, res)
    return res


def cached_resources(items: Iterable[tuple[str, str, betterproto2.Message]]) -> list[CachedResource]:
    return [cached_resource(t, n, m) for t, n, m in items]


def clear_caches() -> None:
    """Forget serialized bytes (tests, benchmarks): resources, sub-message memos and wrapped values."""
    _RESOURCES.clear()
    clear_memos()
