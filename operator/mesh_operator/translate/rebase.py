"""A state read afresh by a source that re-reads everything (local mode parses every file on each change), handed
over as a delta of the previous state: what did not change is the previous state's very objects, and what did
is layered on the previous collections (see :mod:`xds_server.layered`). The translator then reads the change off
the layers instead of seeing every object as new (and the whole mesh as changed). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from mesh_operator.translate.policies import key_of
from mesh_operator.translate.state import MeshState, Policy
from xds_server.layered import GONE, Layered, LayeredSeq

V = TypeVar("V")


def rebased(previous: MeshState, new: MeshState) -> MeshState:
    """``new``, equal to it in every value, with the objects equal to ``previous``'s replaced by those and its
    collections layered on ``previous``'s where the keys (the policies' order) are the same."""
    mesh = previous.mesh if new.mesh == previous.mesh else new.mesh
    return replace(
        new,
        mesh=mesh,
        services=_map(previous.services, new.services),
        workloads=_map(previous.workloads, new.workloads),
        policies=_policies(previous.policies, new.policies),
    )


def _map(old: Mapping[str, V], new: Mapping[str, V]) -> Mapping[str, V]:
    if len(old) == len(new) and list(old) == list(new):  # the same keys in the same order: layer the changes
        changes: dict[str, Any] = {k: v for k, v in new.items() if old[k] != v}
        return Layered.over(old, changes) if changes else old
    if old.keys() == new.keys():
        return {k: (o if (o := old[k]) == v else v) for k, v in new.items()}
    out: dict[str, V] = {}
    for k, v in new.items():
        o = old.get(k, GONE)
        out[k] = o if o is not GONE and o == v else v
    return out


def _policies(old: Sequence[Policy], new: Sequence[Policy]) -> Sequence[Policy]:
    if len(old) == len(new) and all(key_of(a) == key_of(b) for a, b in zip(old, new, strict=True)):
        changes = {i: p for i, (o, p) in enumerate(zip(old, new, strict=True)) if o != p}
        return LayeredSeq.over(old, changes)
    by_key = {key_of(p): p for p in old}
    return tuple(o if (o := by_key.get(key_of(p))) is not None and o == p else p for p in new)
