"""A read-only map derived from another with a few keys replaced, added or removed, in time proportional to the
change: what lets one change of a proxy that holds tens of thousands of resources (an edge proxy calling every
service) cost no copy of its whole per-type maps.

``Layered.over(m, changes)`` equals ``{**m, **changes}`` with :data:`GONE` values removed, as a mapping (same
items, same order: the keys of ``m`` in its order, then the added ones). Successive layers share one base; once
the changes on it outgrow about the square root of its size they are folded into a new plain dict, so a long run
of changes costs O(sqrt(n)) per change, amortized, instead of O(n).

:class:`LayeredSeq` is the same for a tuple with some positions replaced (a proxy's outbound listeners and
clusters, the mesh state's policies). :func:`changed_since` and :func:`positions_since` tell which keys /
positions two such related values may differ in without looking at the rest: what lets a source hand over a new
state that carries its delta.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from math import isqrt
from types import MappingProxyType
from typing import Any, Final, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")


class _Gone:
    def __repr__(self) -> str:
        return "GONE"


#: A value in ``changes`` that removes the key.
GONE: Final[Any] = _Gone()
_MISSING: Final[Any] = object()


class Layered(Mapping[K, V]):
    __slots__ = ("_base", "_len", "_same_keys", "_top")

    def __init__(self, base: Mapping[K, V], top: dict[K, Any]) -> None:
        self._base = base
        self._top = top
        added = removed = 0
        for k, v in top.items():
            present = k in base
            if v is GONE:
                removed += present
            else:
                added += not present
        self._len = len(base) + added - removed
        #: every key of ``top`` is a key of ``base`` that stays: the keys and their order are ``base``'s
        self._same_keys = added == 0 and removed == 0 and all(v is not GONE for v in top.values())

    @classmethod
    def over(cls, m: Mapping[K, V], changes: Mapping[K, Any]) -> Mapping[K, V]:
        """``m`` with ``changes`` applied (a :data:`GONE` value removes its key)."""
        if isinstance(m, Layered):
            base, top = m._base, dict(m._top)
        else:
            base, top = m, {}
        for k, v in changes.items():
            if top.get(k, _MISSING) is GONE:
                if v is not GONE and k in base:  # a removed key back: at the end, as in a dict (rare: fold)
                    return MappingProxyType(_fold(_fold(base, m._top if isinstance(m, Layered) else {}), changes))
                del top[k]  # (an added key removed and added again goes to the end too)
            top[k] = v
        if len(top) > 32 + isqrt(len(base)):
            return MappingProxyType(_fold(base, top))
        return cls(base, top)

    def __getitem__(self, key: K) -> V:
        v = self._top.get(key, _MISSING)
        if v is _MISSING:
            return self._base[key]
        if v is GONE:
            raise KeyError(key)
        return v  # type: ignore[no-any-return]

    def get(self, key: K, default: Any = None) -> Any:
        v = self._top.get(key, _MISSING)
        if v is _MISSING:
            return self._base.get(key, default)
        return default if v is GONE else v

    def __contains__(self, key: object) -> bool:
        v = self._top.get(key, _MISSING)  # type: ignore[arg-type]
        return key in self._base if v is _MISSING else v is not GONE

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[K]:
        if self._same_keys:
            return iter(self._base)
        return iter(_fold(self._base, self._top))

    def items(self) -> Any:
        if self._same_keys:
            top = self._top
            return ((k, top.get(k, v)) for k, v in self._base.items())
        return _fold(self._base, self._top).items()

    def values(self) -> Any:
        return (v for _, v in self.items())

    def __repr__(self) -> str:
        return f"Layered({dict(self.items())!r})"


def _fold(base: Mapping[K, V], top: Mapping[K, Any]) -> dict[K, V]:
    """``base`` with ``top`` applied as dict operations in order (a GONE value deletes its key)."""
    out: dict[K, V] = dict(base.items())
    for k, v in top.items():
        if v is GONE:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def key_container(m: Mapping[K, Any]) -> Container[K]:
    """What answers ``key in m`` for ``m`` at C speed: the base of a layered map that has exactly its base's keys
    (replacements only), else ``m`` itself (a consistency check asks this once per listener and cluster)."""
    while isinstance(m, Layered) and m._same_keys:
        m = m._base
    return m


def changed_since(old: Mapping[K, Any], new: Mapping[K, Any]) -> Iterable[K] | None:
    """The keys that may differ between two maps one was layered from the other (or both on one base): a
    superset of the keys added, removed or given another value, in O(layers). None when the maps are not
    related that way (then only a scan of both tells)."""
    return _layers_since(Layered, old, new)


def _layers_since(
    kind: type[Layered[Any, Any]] | type[LayeredSeq[Any]], old: object, new: object
) -> Iterable[Any] | None:
    """The keys of the layers that separate ``old`` and ``new`` (``kind``: Layered or LayeredSeq, whose ``_top`` is
    a map over keys or positions), or None when neither is layered on the other or both on one base."""
    if isinstance(new, kind):
        if new._base is old:
            return new._top.keys()
        if isinstance(old, kind) and old._base is new._base:
            return old._top.keys() | new._top.keys()
    if isinstance(old, kind) and old._base is new:
        return old._top.keys()
    return None


class LayeredSeq(Sequence[V]):
    """A read-only sequence: a tuple with some positions replaced, in time proportional to the change (the
    sequence counterpart of :class:`Layered`). It reads (and compares and hashes) exactly like the tuple it
    stands for; successive layers share one base tuple, folded into a new tuple once the replaced positions
    outgrow about the square root of its length (O(sqrt(n)) per change, amortized)."""

    __slots__ = ("_base", "_top")

    def __init__(self, base: tuple[V, ...], top: dict[int, V]) -> None:
        self._base = base
        self._top = top

    @classmethod
    def over(cls, seq: Sequence[V], changes: Mapping[int, V]) -> Sequence[V]:
        """``seq`` with the positions of ``changes`` (each in range) holding the new values."""
        if isinstance(seq, LayeredSeq):
            base, top = seq._base, dict(seq._top)
        else:
            base, top = seq if isinstance(seq, tuple) else tuple(seq), {}
        n = len(base)
        for i, v in changes.items():
            if not 0 <= i < n:
                raise IndexError(f"position {i} out of range for a sequence of {n}")
            top[i] = v
        if not top:
            return base
        if len(top) > 32 + isqrt(n):
            return _fold_seq(base, top)
        return cls(base, top)

    def __len__(self) -> int:
        return len(self._base)

    @overload
    def __getitem__(self, index: int) -> V: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[V, ...]: ...
    def __getitem__(self, index: int | slice) -> V | tuple[V, ...]:
        if isinstance(index, slice):
            return _fold_seq(self._base, self._top)[index]
        n = len(self._base)
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("sequence index out of range")
        v = self._top.get(i, _MISSING)
        return self._base[i] if v is _MISSING else v

    def __iter__(self) -> Iterator[V]:
        return iter(_fold_seq(self._base, self._top))

    def __reversed__(self) -> Iterator[V]:
        return reversed(_fold_seq(self._base, self._top))

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        if isinstance(other, LayeredSeq):
            other = _fold_seq(other._base, other._top)
        if not isinstance(other, tuple):
            return NotImplemented
        return _fold_seq(self._base, self._top) == other

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(_fold_seq(self._base, self._top))

    def __add__(self, other: object) -> tuple[V, ...]:
        if not isinstance(other, tuple | LayeredSeq):
            return NotImplemented
        return (*self, *other)

    def __radd__(self, other: object) -> tuple[V, ...]:
        if not isinstance(other, tuple):
            return NotImplemented
        return (*other, *self)

    def __repr__(self) -> str:
        return repr(_fold_seq(self._base, self._top))


def positions_since(old: Sequence[Any], new: Sequence[Any]) -> Iterable[int] | None:
    """The positions that may differ between two sequences of the same length, one layered on the other (or
    both on one base), in O(layers); None when they are not related that way."""
    return _layers_since(LayeredSeq, old, new)


def _fold_seq(base: tuple[V, ...], top: Mapping[int, V]) -> tuple[V, ...]:
    if not top:
        return base
    out = list(base)
    for i, v in top.items():
        out[i] = v
    return tuple(out)
