"""The operator's view of the cluster: every watched object, as last seen, behind one lock.

kopf's handlers (in kopf's thread) write here; the control plane (in the main loop) reads a consistent
:meth:`Store.state` snapshot. Policies are parsed and validated once per generation; status-only changes of our
own objects (our status writes coming back through the watch) are recorded but do not trigger a translation.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesh_operator.api import CRD_KINDS, Mesh
from mesh_operator.crdgen import plural as plural_of
from mesh_operator.kube.adapt_delta import DeltaAdapter
from mesh_operator.kube.adapter import AdaptProblem, ClusterObjects
from mesh_operator.translate import MeshState, PolicyKey
from mesh_operator.translate.state import Policy, default_mesh
from mesh_operator.validation import validate_document
from mesh_operator.validation.violations import Violation
from xds_server.layered import LayeredSeq

#: kind -> field of ClusterObjects, for core kinds
CORE_KINDS = {"Service": "services", "EndpointSlice": "endpoint_slices", "Pod": "pods", "Node": "nodes"}
POLICY_KINDS = tuple(kind for kind in CRD_KINDS if kind != "Mesh")
#: every kind the operator watches (the ready gate waits for the initial LIST of each)
WATCHED_KINDS = (*CORE_KINDS, "Namespace", "Mesh", *POLICY_KINDS)


@dataclass(frozen=True)
class PolicyRecord:
    """One policy object as the status writer needs it."""

    key: PolicyKey
    plural: str
    generation: int
    status: Mapping[str, Any]
    #: schema violations: the object could not be parsed, so it is not in the MeshState
    violations: tuple[Violation, ...] = ()
    #: of the copy the watch last delivered (None if not a number): tells an own write's echo still on its way
    resource_version: int | None = None


@dataclass
class Snapshot:
    state: MeshState
    problems: list[AdaptProblem]
    policies: dict[PolicyKey, PolicyRecord] = field(default_factory=dict)


_PLURALS = {kind: plural_of(kind) for kind in POLICY_KINDS}


def _clean(body: Mapping[str, Any]) -> dict[str, Any]:
    """The object as the validator reads it: no status, no server-side bookkeeping."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    return {**{k: v for k, v in body.items() if k != "status"}, "metadata": meta}


def _key(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


class Store:
    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Mapping[str, Any]]] = {k: {} for k in WATCHED_KINDS}
        #: (kind, key) -> (generation, parsed policy or None, violations)
        self._parsed: dict[tuple[str, str], tuple[int, Any, tuple[Violation, ...]]] = {}
        #: (kind, key) -> resourceVersion of the deletion the watch reported (until a later LIST covers it)
        self._tombstones: dict[tuple[str, str], int] = {}
        self._synced = threading.Event()
        self.on_change = on_change
        self._mesh_cache: tuple[tuple[Any, Any], Mesh | None] | None = None
        #: changes that need a translation, ever (tests and benchmarks read it)
        self.changes = 0
        #: kind -> the keys of the Services, EndpointSlices, Pods and Nodes changed since the last snapshot: it
        #: re-adapts only what depends on them (mesh_operator.kube.adapt_delta) and hands the translator the
        #: services and workloads layered on the last ones, the very same objects where nothing changed (what
        #: makes its O(changed) path cheap).
        self._dirty_core: dict[str, set[str]] = {kind: set() for kind in CORE_KINDS}
        #: None: nothing adapted yet (the first snapshot adapts everything)
        self._delta: DeltaAdapter | None = None
        #: held by a snapshot while it adapts (the delta adapter is not for two at once)
        self._adapt_lock = threading.Lock()
        #: bumped by every change of a policy: the policy tuple is made again only then
        self._policy_generation = 0
        self._policies: tuple[int, Sequence[Policy]] | None = None
        #: the (kind, key) of each policy of the last policy tuple, in its order (sorted), and the policies changed
        #: since it was made: a snapshot after edits of existing policies hands the tuple with those positions
        #: replaced (a LayeredSeq: the translator reads the delta off it); one after policies were created,
        #: deleted or became unparseable, the last tuple with those inserted or removed in place (found by
        #: bisection; the translator finds the changed span by identity)
        self._keys: list[tuple[str, str]] = []
        self._dirty_policies: set[tuple[str, str]] = set()
        #: every policy object's record, kept current by each upsert/delete: the status writer reads them every
        #: round and each snapshot carries them, so they are not rebuilt from the bodies each time (O(changed))
        self._records: dict[PolicyKey, PolicyRecord] = {}

    # ----------------------------------------------------------------- written by the watch handlers

    def upsert(self, kind: str, body: Mapping[str, Any]) -> None:
        with self._lock:
            relevant = self._upsert_locked(kind, _key(body), body)
        if relevant:
            self._changed()

    def delete(self, kind: str, body: Mapping[str, Any]) -> None:
        with self._lock:
            gone = self._delete_locked(kind, _key(body), _resource_version(body))
        if gone:
            self._changed()

    def reconcile(self, kind: str, items: Sequence[Mapping[str, Any]], list_version: int) -> tuple[int, int]:
        """Make the store agree with a full LIST of ``kind`` taken at ``list_version`` (the periodic resync).

        The watch normally keeps the store current; this catches what a watch can miss (a deletion during a long
        partition whose re-list the watch never saw). Nothing newer than the LIST is ever undone: an object is
        replaced only by a newer resourceVersion, removed only if the store's copy predates the LIST, and not
        brought back if the watch saw it deleted later. Returns (objects added or replaced, objects removed)."""
        changed = removed = 0
        relevant = False
        with self._lock:
            listed = {_key(body): body for body in items}
            for k, body in listed.items():
                current = self._objects[kind].get(k)
                version = _resource_version(body)
                tomb = self._tombstones.get((kind, k))
                if version is None or (tomb is not None and tomb >= version):
                    continue
                if current is None or (_resource_version(current) or 0) < version:
                    changed += 1
                    relevant |= self._upsert_locked(kind, k, body)
            for k in [k for k in self._objects[kind] if k not in listed]:
                current_version = _resource_version(self._objects[kind][k])
                if current_version is not None and current_version <= list_version:
                    removed += self._delete_locked(kind, k, None)
            # The LIST reflects every deletion before it: older tombstones are no longer needed.
            self._tombstones = {tk: v for tk, v in self._tombstones.items() if tk[0] != kind or v > list_version}
        if relevant or removed:
            self._changed()
        return changed, removed

    def _upsert_locked(self, kind: str, k: str, body: Mapping[str, Any]) -> bool:
        previous = self._objects[kind].get(k)
        self._objects[kind][k] = body
        self._tombstones.pop((kind, k), None)
        if kind not in POLICY_KINDS and kind != "Mesh":
            if kind in CORE_KINDS:
                self._dirty_core[kind].add(k)
            return True
        relevant = previous is None or _generation(previous) != _generation(body)
        if relevant and kind in POLICY_KINDS:
            self._parse(kind, k, body)
            self._policy_generation += 1
            self._dirty_policies.add((kind, k))
        if kind in POLICY_KINDS:
            record = _record(kind, k, body, self._parsed.get((kind, k)))
            self._records[record.key] = record
        return relevant

    def _delete_locked(self, kind: str, k: str, version: int | None) -> bool:
        gone = self._objects[kind].pop(k, None)
        self._parsed.pop((kind, k), None)
        if kind in POLICY_KINDS:
            ns, _, name = k.partition("/")
            self._records.pop(PolicyKey(kind, ns, name), None)
        if version is not None:
            self._tombstones[(kind, k)] = version
        if gone is not None and kind in CORE_KINDS:
            self._dirty_core[kind].add(k)
        if gone is not None and kind in POLICY_KINDS:
            self._policy_generation += 1
            self._dirty_policies.add((kind, k))
        return gone is not None

    def mark_synced(self) -> None:
        """The initial LIST of every watched kind is in."""
        if not self._synced.is_set():
            self._synced.set()
            self._changed()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def _changed(self) -> None:
        self.changes += 1
        if self.on_change is not None:
            self.on_change()

    def _parse(self, kind: str, k: str, body: Mapping[str, Any]) -> None:
        checked = validate_document(_clean(body))
        self._parsed[(kind, k)] = (_generation(body), checked.obj, tuple(checked.violations))

    # ----------------------------------------------------------------- read by the control plane

    def get(self, kind: str, key: str) -> Mapping[str, Any] | None:
        with self._lock:
            return self._objects[kind].get(key)

    def namespace_labels(self, name: str) -> Mapping[str, str] | None:
        """The labels of a watched Namespace (None when unknown): what injection decides on."""
        ns = self.get("Namespace", name)
        if ns is None:
            return None
        labels: Mapping[str, str] = (ns.get("metadata") or {}).get("labels") or {}
        return labels

    def objects(self, kind: str) -> list[Mapping[str, Any]]:
        """Every stored object of ``kind`` (a copy of the list; the objects are shared, do not mutate them)."""
        with self._lock:
            return list(self._objects[kind].values())

    def count(self, kind: str) -> int:
        with self._lock:
            return len(self._objects[kind])

    def policy_records(self) -> dict[PolicyKey, PolicyRecord]:
        """Every policy object with the status it carries now (cheap: no adaptation)."""
        with self._lock:
            return dict(self._records)

    def snapshot(self) -> Snapshot:
        """The MeshState of everything stored now. Only what the core objects changed since the last snapshot
        affects is adapted again (under the lock: O(changed)); the first one adapts every object (from a copy,
        outside the lock)."""
        with self._adapt_lock:
            with self._lock:
                changed, self._dirty_core = self._dirty_core, {kind: set() for kind in CORE_KINDS}
                objects = None
                if self._delta is None:
                    objects = ClusterObjects(**{f: dict(self._objects[kind]) for kind, f in CORE_KINDS.items()})
                elif any(changed.values()):
                    live = ClusterObjects(**{f: self._objects[kind] for kind, f in CORE_KINDS.items()})
                    try:
                        self._delta.apply(live, changed)
                    except BaseException:
                        self._delta = None  # half applied: the next snapshot adapts everything again
                        raise
                meshes = dict(self._objects["Mesh"])
                records = dict(self._records)
                if self._policies is None or self._policies[0] != self._policy_generation:
                    self._policies = (self._policy_generation, self._policy_tuple_locked())
                policies = self._policies[1]
            if objects is not None:
                self._delta = DeltaAdapter.of(objects)
            delta = self._delta
            assert delta is not None
            state = MeshState(self._mesh(meshes) or default_mesh(), delta.services, delta.workloads, policies)
            return Snapshot(state, delta.problems(), records)

    def _policy_tuple_locked(self) -> Sequence[Policy]:
        """Every parsed policy, sorted by (kind, key): the last tuple with the edited positions replaced when only
        existing policies were edited, with the created ones inserted and the deleted (or now unparseable) ones
        removed in place otherwise (O(changed) in Python, a copy of the tuple in C); sorted afresh the first time."""
        dirty, self._dirty_policies = self._dirty_policies, set()
        if self._policies is None:
            ordered = sorted((key, obj) for key, (_, obj, _) in self._parsed.items() if obj is not None)
            self._keys = [key for key, _ in ordered]
            return tuple(obj for _, obj in ordered)
        keys, last = self._keys, self._policies[1]
        edits: dict[tuple[str, str], Policy] = {}
        moves: list[tuple[tuple[str, str], Policy | None]] = []
        for key in sorted(dirty):
            at = bisect_left(keys, key)
            present = at < len(keys) and keys[at] == key
            entry = self._parsed.get(key)
            obj = entry[1] if entry is not None else None
            if present and obj is not None:
                edits[key] = obj
            elif present or obj is not None:
                moves.append((key, obj))  # deleted or unparseable now / created or parseable again
        if not moves:
            return LayeredSeq.over(last, {bisect_left(keys, key): obj for key, obj in edits.items()})
        items = list(last)
        for key, obj in moves:
            at = bisect_left(keys, key)
            if obj is None:
                del keys[at], items[at]
            else:
                keys.insert(at, key)
                items.insert(at, obj)
        for key, obj in edits.items():
            items[bisect_left(keys, key)] = obj
        return tuple(items)

    def _mesh(self, meshes: Mapping[str, Mapping[str, Any]]) -> Mesh | None:
        """The Mesh named ``default`` (others are ignored); an invalid Mesh is left out, so defaults stay in force.
        Parsed once per generation (the translator memoizes by object identity)."""
        body = meshes.get("default")
        if body is None:
            return None
        meta = body.get("metadata") or {}
        ident = (meta.get("uid"), meta.get("generation"))
        if self._mesh_cache is None or self._mesh_cache[0] != ident:
            checked = validate_document(_clean(body))
            mesh = checked.obj if checked.ok and isinstance(checked.obj, Mesh) else None
            self._mesh_cache = (ident, mesh)
        return self._mesh_cache[1]


def _record(
    kind: str, k: str, body: Mapping[str, Any], parsed: tuple[int, Any, tuple[Violation, ...]] | None
) -> PolicyRecord:
    generation, obj, violations = parsed if parsed is not None else (_generation(body), None, ())
    ns, _, name = k.partition("/")
    pkey = PolicyKey(kind, ns, name)
    unparsed = violations if obj is None else ()
    status = body.get("status") or {}
    return PolicyRecord(pkey, _PLURALS[kind], generation, status, unparsed, _resource_version(body))


def _resource_version(body: Mapping[str, Any]) -> int | None:
    """The object's resourceVersion as a number (etcd's revision), None if it is not one."""
    value = str((body.get("metadata") or {}).get("resourceVersion") or "")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _generation(body: Mapping[str, Any]) -> int:
    return int((body.get("metadata") or {}).get("generation") or 1)
