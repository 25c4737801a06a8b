"""A read-only map derived from another with a few keys replaced, added or removed, in time proportional to the
change: what lets one change of a proxy that holds tens of thousands of resources (an edge proxy calling every
service) cost no copy of its whole per-type maps.

``Layered.over(m, changes)`` equals ``{**m, **changes}`` with :data:`GONE` values removed, as a mapping (same
items, same order: the keys of ``m`` in its order, then the added ones). Successive layers share one base; once
the changes on it outgrow about the square root of its size they are folded into a new plain dict, so a long run
of changes costs O(sqrt(n)) per change, amortized, instead of O(n).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from math import isqrt
from types import MappingProxyType
from typing import Any, Final, TypeVar

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
