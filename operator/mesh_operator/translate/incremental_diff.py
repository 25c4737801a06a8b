"""What changed between two states, found without walking the whole mesh where that is possible: the slot index
of the policies (which policies ``resolve`` decides together) and the identity diffs of the state's collections.
Part of :mod:`mesh_operator.translate.incremental`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, count
from operator import is_not

from mesh_operator.api import AccessPolicy, AuthenticationPolicy, RetryPolicy, TrafficPolicy
from mesh_operator.translate.state import Policy
from mesh_operator.translate.status import PolicyKey


class Unknown(Exception):
    """A policy kind this module has no slot rule for: the full path translates (see :func:`slots`)."""


_KINDS = (TrafficPolicy, RetryPolicy, AccessPolicy, AuthenticationPolicy)


def slots(key: PolicyKey, p: Policy | None) -> set[str]:
    """The slots one version of a policy occupies: what resolve may decide together with other policies.
    A new policy kind needs its rule here (until then every translation with it takes the full path)."""
    out = {f"k:{key}"}
    if p is None:
        return out
    if not isinstance(p, _KINDS):
        raise Unknown(p.kind)
    ns, ref = p.metadata.namespace, p.spec.target_ref
    if isinstance(p, RetryPolicy) and ref.kind != "Service":
        out.add(f"t:{ns}/{ref.name}")
    else:
        out.add(f"s:{ns}/{ref.name}")
    if isinstance(p, TrafficPolicy):
        out.add(f"t:{ns}/{p.metadata.name}")
    return out


@dataclass
class Index:
    """Which policy keys occupy which slots."""

    of: dict[PolicyKey, frozenset[str]] = field(default_factory=dict)
    keys: dict[str, set[PolicyKey]] = field(default_factory=dict)

    def put(self, key: PolicyKey, slots: set[str]) -> None:
        for s in self.of.get(key, ()):
            members = self.keys[s]
            members.discard(key)
            if not members:
                del self.keys[s]
        if slots:
            self.of[key] = frozenset(slots)
            for s in slots:
                self.keys.setdefault(s, set()).add(key)
        else:
            self.of.pop(key, None)

    def closure(self, start: Iterable[PolicyKey]) -> set[PolicyKey]:
        seen = set(start)
        todo = list(seen)
        slots_seen: set[str] = set()
        while todo:
            k = todo.pop()
            for s in self.of.get(k, ()):
                if s in slots_seen:
                    continue
                slots_seen.add(s)
                for other in self.keys.get(s, ()):
                    if other not in seen:
                        seen.add(other)
                        todo.append(other)
        return seen

    def services(self, keys: Iterable[PolicyKey]) -> set[str]:
        return {s[2:] for k in keys for s in self.of.get(k, ()) if s.startswith("s:")}


def _first_difference(a: Iterable[object], b: Iterable[object], limit: int) -> int:
    """How many leading elements of ``a`` and ``b`` are the same objects (at most ``limit``). Runs in C and stops
    at the first difference."""
    return min(next(compress(count(), map(is_not, a, b)), limit), limit)


def changed_span(old: Sequence[object], new: Sequence[object], most: int) -> tuple[int, int, int] | None:
    """``(i, j_old, j_new)`` such that ``old[:i]``/``new[:i]`` and ``old[j_old:]``/``new[j_new:]`` are the same
    objects at the same places: ``old[i:j_old]`` became ``new[i:j_new]``. What a source that edits, inserts or
    deletes a few policies of an ordered tuple hands over; None when more than ``most`` elements differ (then a
    set comparison is the better diff). Costs a pointer comparison per unchanged element, in C."""
    limit = min(len(old), len(new))
    i = _first_difference(old, new, limit)
    k = _first_difference(reversed(old), reversed(new), limit - i)
    j_old, j_new = len(old) - k, len(new) - k
    if (j_old - i) + (j_new - i) > most:
        return None
    return i, j_old, j_new


def changed_keys(old: Mapping[str, object], new: Mapping[str, object]) -> set[str]:
    """Keys added, removed, or whose value changed (not the same object and not equal: rebuilt equal objects,
    as local mode and the adapter make, are no change). The identity scan runs in C; when both maps hold the
    same keys in the same order (a copy with some values replaced, the usual update) it compares values only."""
    if len(old) == len(new) and not any(map(is_not, old, new)):
        candidates = compress(new.keys(), map(is_not, old.values(), new.values()))
        return {k for k in candidates if old[k] != new[k]}
    candidates = compress(new.keys(), map(is_not, map(old.get, new.keys()), new.values()))
    changed = {k for k in candidates if old.get(k) != new[k]}
    changed.update(old.keys() - new.keys())
    return changed
