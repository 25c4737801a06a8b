"""What changed between two states, found without walking the whole mesh where that is possible: the slot index
of the policies (which policies ``resolve`` decides together) and the identity diffs of the state's collections.
Part of :mod:`mesh_operator.translate.incremental`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import compress, count
from operator import is_not
from typing import Any

from mesh_operator.api import AccessPolicy, AuthenticationPolicy, RetryPolicy, TrafficPolicy
from mesh_operator.translate.state import Policy
from mesh_operator.translate.status import PolicyKey
from xds_server.layered import changed_since, positions_since

_MISSING: Any = object()


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
    as local mode and the adapter make, are no change). When ``new`` is layered on ``old`` (or both on one base,
    see :func:`xds_server.layered.changed_since`) only the layered keys are looked at. Otherwise the identity
    scan runs in C; when both maps hold the same keys in the same order (a copy with some values replaced) it
    compares values only."""
    layered = changed_since(old, new)
    if layered is not None:
        out = set()
        for k in layered:
            a, b = old.get(k, _MISSING), new.get(k, _MISSING)
            if a is not b and (a is _MISSING or b is _MISSING or a != b):
                out.add(k)
        return out
    if len(old) == len(new) and not any(map(is_not, old, new)):
        candidates = compress(new.keys(), map(is_not, old.values(), new.values()))
        return {k for k in candidates if old[k] != new[k]}
    candidates = compress(new.keys(), map(is_not, map(old.get, new.keys()), new.values()))
    changed = {k for k in candidates if old.get(k) != new[k]}
    changed.update(old.keys() - new.keys())
    return changed


def object_delta(
    seen: Sequence[Policy] | None, policies: Sequence[Policy], known: AbstractSet[int], most: int
) -> tuple[Iterable[int], Iterable[Policy]]:
    """(ids of the objects of ``seen`` no longer in ``policies``, objects of ``policies`` new since ``seen``);
    ``known``: the ids of every object of ``seen``. Read off the layers when ``policies`` is ``seen`` with a
    few positions replaced (a source's delta, see :class:`xds_server.layered.LayeredSeq`), else from the
    span of an edited sequence (:func:`changed_span`, ``most``), else by comparing the sets of objects."""
    at = None if seen is None else positions_since(seen, policies)
    span = None if seen is None or at is not None else changed_span(seen, policies, most)
    if seen is None or (at is None and span is None):  # many changes, or another order: the sets of objects
        ids = set(map(id, policies))
        added = ids - known
        came = compress(policies, map(added.__contains__, map(id, policies))) if added else ()
        return known - ids, came
    # a few edited, inserted or removed in place: only those are looked at
    if at is not None:
        old_part, new_part = [seen[i] for i in at], [policies[i] for i in at]
    else:
        assert span is not None
        i, j_old, j_new = span
        old_part, new_part = list(seen[i:j_old]), list(policies[i:j_new])
    new_ids = {id(p): p for p in new_part}
    old_ids = set(map(id, old_part))
    return [x for x in old_ids if x not in new_ids], [p for x, p in new_ids.items() if x not in old_ids]
