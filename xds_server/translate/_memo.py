"""Memoization of translation functions on frozen IR values.

Two levels: an identity map (an unchanged IR object passed again costs one dict probe, no hashing) in front of a
map keyed by value (an equal IR object rebuilt by the caller costs one hash and one comparison: the IR's
dataclass ``__hash__`` is recomputed on every call and is deep, so the key caches it). Both are bounded by two
generations of plain dicts (a full young generation becomes the old one; hits in the old one are promoted):
approximately LRU at the cost of one or two dict probes. Results are shared between callers and must be
treated as immutable. Not thread-safe (the control plane translates on one thread).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_ALL: list[Callable[[], None]] = []


class _Key:
    """A tuple of arguments with its hash computed once."""

    __slots__ = ("args", "h")

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.args = args
        self.h = hash(args)

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and self.h == other.h and self.args == other.args


class _Generations:
    def __init__(self, maxsize: int) -> None:
        self.half = max(1, maxsize // 2)
        self.young: dict[Any, Any] = {}
        self.old: dict[Any, Any] = {}

    def get(self, key: Any) -> Any:
        hit = self.young.get(key)
        if hit is None:
            hit = self.old.get(key)
            if hit is not None:
                self.put(key, hit)
        return hit

    def put(self, key: Any, value: Any) -> None:
        if len(self.young) >= self.half:
            self.old, self.young = self.young, {}
        self.young[key] = value

    def clear(self) -> None:
        self.young.clear()
        self.old.clear()


def memoize(maxsize: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Memoize a function of hashable positional arguments (the first one being the IR element)."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        by_value = _Generations(maxsize)
        by_id = _Generations(maxsize)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if kwargs:  # not used by the translation; keep it correct anyway
                return fn(*args, **kwargs)
            first, rest = args[0], args[1:]
            hit = by_id.get(id(first))
            if hit is not None and hit[0] is first and hit[1] == rest:
                result: R = hit[2]
                return result
            key = _Key(args)
            box = by_value.get(key)
            if box is None:
                box = (fn(*args, **kwargs),)
                by_value.put(key, box)
            result = box[0]
            by_id.put(id(first), (first, rest, result))
            return result

        def clear() -> None:
            by_value.clear()
            by_id.clear()

        _ALL.append(clear)
        return wrapper

    return decorate


def register_clear(clear: Callable[[], None]) -> None:
    """Have :func:`clear_all` call ``clear`` too (other memos of the translation, see ``_shared``)."""
    _ALL.append(clear)


def clear_all() -> None:
    """Forget every memoized translation (tests and benchmarks)."""
    for clear in _ALL:
        clear()
