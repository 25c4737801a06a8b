"""Memoization by object identity, for the immutable API objects the translator reads.

API objects are frozen pydantic models but hold lists and dicts, so they are not hashable. A store (the Kubernetes
watch cache, or local mode between edits of other files) hands the translator the very same object until the
object changes, so identity is a sound and cheap key. Entries keep a reference to their key objects, so an id is
never reused while its entry lives; the table is bounded (oldest entries go first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from pydantic import BaseModel

V = TypeVar("V")


class IdentityMemo(Generic[V]):
    def __init__(self, maxsize: int = 65_536) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[Hashable, tuple[tuple[object, ...], V]] = OrderedDict()

    def get(self, keys: tuple[object, ...], compute: Callable[[], V]) -> V:
        """The value for these key objects, computing it once. Hashable keys (strings, frozen dataclasses, tuples
        of them) compare by value; unhashable ones (API objects) by identity."""
        k = tuple(_key(x) for x in keys)
        hit = self._entries.get(k)
        if hit is not None and all(a is b or _key(a) == _key(b) for a, b in zip(hit[0], keys, strict=True)):
            self._entries.move_to_end(k)
            return hit[1]
        value = compute()
        self._entries[k] = (keys, value)
        if len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()


def _key(x: object) -> Hashable:
    if isinstance(x, BaseModel):  # API objects: lists and dicts inside, compared by identity
        return ("id", id(x))
    try:
        hash(x)
    except TypeError:
        return ("id", id(x))
    return ("value", x)
