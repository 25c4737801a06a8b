"""O(changed) translation: :class:`Translator` gives what :func:`translate_mesh` gives, re-deriving only what the
change between two states touches.

It keeps, from the previous call, the resolved policies, every service's outbound routing and every proxy's IR,
with the dependencies each was derived from:

* **Policies resolve per component.** Everything :func:`~mesh_operator.translate.policies.resolve` decides about
  a policy (validation, target lookup, conflicts, rule retries, the last accepted version) involves only the
  policies sharing a *slot* with it: its own key, the service it targets (``s:ns/name``), the TrafficPolicy name a
  RetryPolicy's rule target refers to (``t:ns/name``), for its current and its last accepted version. A change
  re-resolves the connected components of the changed policies (before and after the change), with the same
  ``resolve`` on a state holding just them, and replaces their entries.
* **Routing per service** is kept while the service and its component are unchanged.
* **A proxy is rebuilt** when its workload changed, or a service it serves or calls changed (its instances, or
  its component's policies); a transparent proxy (which reaches every service) when any service changed.
* **Outcomes** stay as resolved (never mutated); the warnings translation adds (a service's routing, global rate
  limits without a rate-limit service) go on copies, for the services some proxy routes to, as in a full run.

Anything unusual takes the full path and starts afresh: Gateway API routes exist (no slot rules for them yet), the
Mesh object changed, two policies share a key, or a policy's translation raised (the full path pins that failure on
the policy). Equality with
:func:`translate_mesh` is proven over randomized change sequences in ``tests/unit/test_incremental_translate.py``.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import compress
from operator import is_not
from types import MappingProxyType
from typing import Any

from mesh_operator.api import AccessPolicy, AuthenticationPolicy, RetryPolicy, TrafficPolicy
from mesh_operator.api.mesh import Mesh
from mesh_operator.translate import MeshTranslation, translate_mesh
from mesh_operator.translate.incremental_diff import Index, Unknown, changed_keys, object_delta, slots
from mesh_operator.translate.incremental_patch import patch_ir, positions_of
from mesh_operator.translate.policies import Rejection, Resolved, key_of, resolve
from mesh_operator.translate.proxy import ProxyBuilder, mesh_settings
from mesh_operator.translate.state import MeshState, Policy, Refused, ServiceInfo, WorkloadInfo
from mesh_operator.translate.status import PolicyKey, PolicyOutcome
from mesh_operator.translate.traffic import ServiceRouting
from mesh_operator.validation.violations import Violation
from xds_server import ir
from xds_server.layered import GONE, Layered

__all__ = ["Translator"]

#: A policy tuple differing from the previous one in more than this many elements (plus an eighth of its length)
#: is compared as a set of objects rather than as an edited sequence.
SPAN_BASE = 64

_MISSING: Any = object()


class Translator:
    """Stateful twin of :func:`translate_mesh` for the whole mesh (one instance per control plane; not
    thread-safe: one translation at a time)."""

    def __init__(self) -> None:
        self._fresh = True
        #: node ids whose IR was (re)built or removed by the last call (all of them after a full run)
        self.changed: set[str] = set()
        #: of those, the proxies whose previous IR was patched (only services they call changed)
        self.patched: set[str] = set()
        #: patched node -> (its previous IR, changed outbound positions, changed cluster positions): the rest of
        #: the new IR is the very same objects (lets stage 2 and provenance skip comparing every element)
        self.hints: dict[str, tuple[ir.ProxyConfig, tuple[int, ...], tuple[int, ...]]] = {}
        #: what the last call did: "full", "incremental" or "fallback" (a policy's translation raised)
        self.last_path = "full"
        #: the policy keys whose entry among the policies in force may have changed since
        #: :meth:`take_in_force_changes` (None: any may, after a full run)
        self.in_force_changed: set[PolicyKey] | None = None
        self._reset()

    def _reset(self) -> None:
        self._fresh = True
        self.in_force_changed = None
        self._mesh: Mesh | None = None
        self._settings: ir.MeshSettings | None = None
        self._services: Mapping[str, ServiceInfo] = {}
        self._workloads: Mapping[str, WorkloadInfo] = {}
        self._by_id: dict[int, tuple[Policy, PolicyKey]] = {}
        self._seen: Sequence[Policy] | None = None
        self._duplicates = False
        self._pending: set[PolicyKey] = set()
        self._current: dict[PolicyKey, Policy] = {}
        self._refused_by_id: dict[int, tuple[Refused, PolicyKey]] = {}
        self._refused: dict[PolicyKey, Refused] = {}
        self._last_good: dict[PolicyKey, Policy] = {}
        self._verdicts: dict[PolicyKey, Rejection] = {}
        self._index = Index()
        # resolved (pristine: never mutated once made)
        self._traffic: dict[str, TrafficPolicy] = {}
        self._retry: dict[str, RetryPolicy] = {}
        self._rule_retry: dict[tuple[str, str], RetryPolicy] = {}
        self._rule_retries: dict[str, dict[str, RetryPolicy]] = {}
        self._access: dict[str, list[AccessPolicy]] = {}
        self._authn: dict[str, list[AuthenticationPolicy]] = {}
        self._outcomes: dict[PolicyKey, PolicyOutcome] = {}
        self._used: dict[PolicyKey, Policy] = {}
        self._in_force: dict[PolicyKey, Policy] = {}
        # translation
        self._routing: dict[str, ServiceRouting] = {}
        self._outbound: dict[tuple[str, int], tuple[ServiceRouting, ir.OutboundListener]] = {}
        self._proxies: dict[str, ir.ProxyConfig] = {}
        #: node -> service host -> positions of its outbound listeners in the node's IR
        self._positions: dict[str, dict[str, tuple[int, ...]]] = {}
        self._deps: dict[str, tuple[frozenset[str], frozenset[str]]] = {}  # node -> (served, called)
        self._servers: dict[str, set[str]] = {}  # service -> nodes serving it
        self._callers: dict[str, set[str]] = {}  # service -> nodes calling it
        self._transparent: set[str] = set()
        # outcomes with translation's warnings: service -> (policy key, warning) in the order a full run adds them
        self._warnings: dict[str, tuple[tuple[PolicyKey, Violation], ...]] = {}
        self._sources: dict[PolicyKey, set[str]] = {}  # policy -> services whose warnings concern it
        self._callers_changed: set[str] = set()
        self._had_transparent = False
        #: the outcomes handed out by the last call (never mutated: the control plane keeps them for status while
        #: the next call runs); a call's writes collect in ``_final_changes`` and are layered on at its end
        self._final: Mapping[PolicyKey, PolicyOutcome] = MappingProxyType({})
        self._final_changes: dict[PolicyKey, PolicyOutcome] = {}

    # ------------------------------------------------------------------------------------------------ entry

    def translate(
        self,
        state: MeshState,
        *,
        last_good: Mapping[PolicyKey, Policy] | None = None,
        rejected: Mapping[PolicyKey, Rejection] | None = None,
    ) -> MeshTranslation:
        """What ``translate_mesh(state, last_good=last_good, rejected=rejected)`` returns (equal IR, outcomes,
        policies in force), computed from what changed since the previous call."""
        last_good = last_good or {}
        rejected = rejected or {}
        if state.routes:
            # Gateway API routes have no slot rules here yet: the full path translates, and the next call without
            # routes starts afresh.
            self._reset()
            self._fresh = True
            self.last_path = "full"
            self.changed = set(state.workloads)
            return translate_mesh(state, last_good=last_good, rejected=rejected)
        enabled = gc.isenabled()
        gc.disable()
        try:
            if self._fresh or state.mesh is not self._mesh:
                self._reset()
                self._mesh = state.mesh
                self._settings = mesh_settings(state)
                self.last_path = "full"
            else:
                self.last_path = "incremental"
            try:
                out = self._step(state, last_good, rejected)
            except Unknown:
                out = None
            self._fresh = False
            if out is None:  # a policy's translation raised: the full path pins it; start afresh next time
                self._reset()
                self.last_path = "fallback"
                self.changed = set(state.workloads)
                return translate_mesh(state, last_good=last_good, rejected=rejected)
            return out
        except BaseException:
            self._reset()
            raise
        finally:
            if enabled:
                gc.enable()

    # ------------------------------------------------------------------------------------------------ steps

    def _step(
        self, state: MeshState, last_good: Mapping[PolicyKey, Policy], rejected: Mapping[PolicyKey, Rejection]
    ) -> MeshTranslation | None:
        changed_keys = self._diff_policies(state, last_good, rejected)
        if changed_keys is None:
            return None
        changed_services = self._diff_services(state.services)
        # every policy that may be decided differently: the components of what changed, before and after
        start = set(changed_keys)
        for s in changed_services:
            start |= self._index.keys.get(f"s:{s}", set())
        before = self._index.closure(start)
        old_services = self._index.services(before)
        for k in changed_keys:
            self._index.put(k, self._slots_of(k))
        affected = self._index.closure(before)
        touched = old_services | self._index.services(affected) | changed_services
        self._re_resolve(state, affected, touched, last_good, rejected)

        previous_routing = {s: r for s in touched if (r := self._routing.pop(s, None)) is not None}
        if len(self._outbound) > 4 * len(state.services) + 1024:  # entries of deleted services and old ports
            self._outbound.clear()
        nodes, patchable = self._dirty_nodes(state, touched)
        self.patched = set()
        self.hints = {}
        builder = ProxyBuilder(
            state,
            Resolved(self._traffic, self._retry, self._rule_retry, self._access, self._authn, self._outcomes),
            routing_cache=self._routing,
            rule_retries=self._rule_retries,
            mesh=self._settings,
            apply_warnings=False,
            outbound_cache=self._outbound,
        )
        added_or_removed = False
        for node in sorted(nodes):
            w = state.workloads.get(node)
            if node in patchable and w is not None:
                prev = self._proxies.get(node)
                assert self._settings is not None
                patched = None
                if self._settings.tracing is None:
                    patched = patch_ir(
                        builder,
                        self._services,
                        self._proxies.get(w.node_id),
                        self._positions.get(w.node_id),
                        self._deps[node][1] & touched,
                        previous_routing,
                    )
                if patched is not None and prev is not None:
                    self._proxies[node] = patched[0]
                    self.patched.add(node)
                    self.hints[node] = (prev, patched[1], patched[2])
                    continue
            called = self._forget_node(node)
            self._positions.pop(node, None)
            if w is None:
                self._callers_changed |= called
                added_or_removed |= self._proxies.pop(node, None) is not None
                continue
            try:
                cfg = builder.build(w)
            except Exception:
                return None
            added_or_removed |= node not in self._proxies
            self._proxies[node] = cfg
            self._positions[node] = positions_of(cfg)
            # services this proxy started or stopped calling may have become (un)routed
            self._callers_changed |= called ^ self._remember_node(w)
        if builder.failures:
            return None
        if added_or_removed:
            self._proxies = dict(sorted(self._proxies.items()))
        self._workloads = state.workloads
        self.changed = nodes
        self._refresh_warnings(builder, touched)
        # The outcomes stay valid after the next call (the control plane keeps them for status): this call's
        # changes are layered on the previous map (O(changed), see xds_server.layered), not written into a copy.
        # The proxies and the policies in force are read-only views of the live maps, valid until the next call
        # (what the control plane uses them for); copying them would cost O(mesh) per change.
        if self._final_changes:
            self._final = Layered.over(self._final, self._final_changes)
            self._final_changes = {}
        return MeshTranslation(MappingProxyType(self._proxies), self._final, {}, MappingProxyType(self._in_force))

    def _outcome(self, key: PolicyKey) -> PolicyOutcome | None:
        v = self._final_changes.get(key, _MISSING)
        if v is _MISSING:
            return self._final.get(key)
        return None if v is GONE else v

    def _set_outcome(self, key: PolicyKey, outcome: PolicyOutcome) -> None:
        self._final_changes[key] = outcome

    def _drop_outcome(self, key: PolicyKey) -> None:
        if key in self._final:
            self._final_changes[key] = GONE
        else:
            self._final_changes.pop(key, None)

    def take_in_force_changes(self) -> set[PolicyKey] | None:
        """:attr:`in_force_changed`, then start collecting afresh."""
        changed, self.in_force_changed = self.in_force_changed, set()
        return changed

    def current(self, state: MeshState) -> Mapping[PolicyKey, Policy]:
        """``{key_of(p): p for p in state.policies}``, computing keys only for policy objects not seen before
        (from the incremental state: a read-only view, valid until the next call)."""
        if self._fresh or state.mesh is not self._mesh or not self._diff_objects(state):
            return {key_of(p): p for p in state.policies}
        return MappingProxyType(self._current)

    def _diff_objects(self, state: MeshState) -> bool:
        """Take in the policy objects of ``state`` (changed keys go to ``_pending``); False when two share a key."""
        policies, seen = state.policies, self._seen
        if policies is seen:
            return not self._duplicates
        gone, came = object_delta(seen, policies, self._by_id.keys(), SPAN_BASE + len(policies) // 8)
        for i in gone:
            _, k = self._by_id.pop(i)
            self._pending.add(k)
            if self._current.get(k) is not None and id(self._current[k]) == i:
                del self._current[k]
        for p in came:
            i = id(p)
            k = key_of(p)
            self._by_id[i] = (p, k)
            self._current[k] = p
            self._pending.add(k)
        self._seen = policies
        self._duplicates = len(self._current) != len(policies) or len(self._by_id) != len(policies)
        return not self._duplicates

    def _diff_policies(
        self, state: MeshState, last_good: Mapping[PolicyKey, Policy], rejected: Mapping[PolicyKey, Rejection]
    ) -> set[PolicyKey] | None:
        if not self._diff_objects(state):
            return None  # two policies with one key: the full path decides (as it always has)
        changed, self._pending = self._pending, set()
        refused = {id(r): r for r in state.refused}
        for i in self._refused_by_id.keys() - refused.keys():
            _, k = self._refused_by_id.pop(i)
            changed.add(k)
            if self._refused.get(k) is not None and id(self._refused[k]) == i:
                del self._refused[k]
        for i in refused.keys() - self._refused_by_id.keys():
            r = refused[i]
            k = PolicyKey(r.kind, r.namespace, r.name)
            self._refused_by_id[i] = (r, k)
            self._refused[k] = r
            changed.add(k)
        if len(self._refused) != len(state.refused):
            return None
        # (the control plane hands every accepted policy each round: an identity scan in C, not a Python loop)
        changed.update(
            compress(last_good.keys(), map(is_not, map(self._last_good.get, last_good.keys()), last_good.values()))
        )
        changed.update(self._last_good.keys() - last_good.keys())
        self._last_good = dict(last_good)
        for k, v in rejected.items():
            if self._verdicts.get(k) != v:
                changed.add(k)
        changed.update(self._verdicts.keys() - rejected.keys())
        self._verdicts = dict(rejected)
        return changed

    def _slots_of(self, k: PolicyKey) -> set[str]:
        current, previous = self._current.get(k), self._last_good.get(k)
        if current is None and previous is None and k not in self._refused:
            return set()
        return slots(k, current) | slots(k, previous)

    def _diff_services(self, services: Mapping[str, ServiceInfo]) -> set[str]:
        old = self._services
        if services is old:
            return set()
        changed = changed_keys(old, services)
        self._services = services
        return changed

    def _re_resolve(
        self,
        state: MeshState,
        keys: set[PolicyKey],
        services: set[str],
        last_good: Mapping[PolicyKey, Policy],
        rejected: Mapping[PolicyKey, Rejection],
    ) -> None:
        if self.in_force_changed is not None:
            self.in_force_changed |= keys
        for k in keys:
            self._outcomes.pop(k, None)
            self._used.pop(k, None)
            self._in_force.pop(k, None)
            self._drop_outcome(k)
        for s in services:
            self._traffic.pop(s, None)
            self._retry.pop(s, None)
            self._access.pop(s, None)
            self._authn.pop(s, None)
            for rule in self._rule_retries.pop(s, {}):
                self._rule_retry.pop((s, rule), None)
        if not keys:
            return
        sub = replace(
            state,
            policies=tuple(p for k in keys if (p := self._current.get(k)) is not None),
            refused=tuple(x for k in keys if (x := self._refused.get(k)) is not None),
        )
        r = resolve(sub, last_good, rejected)
        self._traffic.update(r.traffic)
        self._retry.update(r.retry)
        self._rule_retry.update(r.rule_retry)
        for (s, rule), policy in r.rule_retry.items():
            self._rule_retries.setdefault(s, {})[rule] = policy
        self._access.update(r.access)
        self._authn.update(r.authn)
        self._outcomes.update(r.outcomes)
        self._final_changes.update(r.outcomes)
        self._used.update(r.used)
        self._in_force.update(r.in_force())

    # ------------------------------------------------------------------------------------------------ proxies

    def _dirty_nodes(self, state: MeshState, services: set[str]) -> tuple[set[str], set[str]]:
        """The proxies to rebuild, and those of them whose only change is in services they call."""
        old, new = self._workloads, state.workloads
        nodes = set() if new is old else changed_keys(old, new)
        whole = set(nodes)
        for s in services:
            whole |= self._servers.get(s, set())
            nodes |= self._callers.get(s, set())
        if services:
            whole |= self._transparent
        nodes |= whole
        return nodes, nodes - whole

    def _forget_node(self, node: str) -> frozenset[str]:
        served, called = self._deps.pop(node, (frozenset(), frozenset()))
        for s in served:
            self._servers[s].discard(node)
        for s in called:
            self._callers[s].discard(node)
        self._transparent.discard(node)
        return called

    def _remember_node(self, w: WorkloadInfo) -> frozenset[str]:
        node = w.node_id
        served = frozenset(ib.service for ib in w.inbound)
        # a transparent proxy reaches every service instead of its declared upstreams
        called = frozenset() if w.transparent else frozenset(up.service for up in w.upstreams)
        self._deps[node] = (served, called)
        for s in served:
            self._servers.setdefault(s, set()).add(node)
        for s in called:
            self._callers.setdefault(s, set()).add(node)
        if w.transparent:
            self._transparent.add(node)
        return called

    # ------------------------------------------------------------------------------------------------ outcomes

    def _routed(self, service: str) -> bool:
        """Whether a full run computes this service's routing (some proxy reaches it)."""
        return service in self._services and (bool(self._transparent) or bool(self._callers.get(service)))

    def _refresh_warnings(self, builder: ProxyBuilder, services: set[str]) -> None:
        """Outcomes carry the warnings a full run adds: global limits without a rate-limit service, then each
        routed service's routing warnings. Recomputed for the services touched, those whose callers changed, and
        all of them when transparent proxies (which route to every service) appeared or disappeared."""
        assert self._settings is not None
        todo = services | self._callers_changed
        self._callers_changed = set()
        if bool(self._transparent) != self._had_transparent:
            todo |= set(self._services) | set(self._warnings)
            self._had_transparent = bool(self._transparent)
        without_service = self._settings.ratelimit_service is None
        keys: set[PolicyKey] = set()
        for s in todo:
            old = self._warnings.pop(s, ())
            new: list[tuple[PolicyKey, Violation]] = []
            tp = self._traffic.get(s)
            if without_service and tp is not None:
                new += [(key_of(tp), w) for w in _rate_limit_warnings(tp)]
            if self._routed(s):
                new += builder.routing(s).warnings
            if new:
                self._warnings[s] = tuple(new)
            for k, _ in old:
                self._sources.get(k, set()).discard(s)
                keys.add(k)
            for k, _ in new:
                self._sources.setdefault(k, set()).add(s)
                keys.add(k)
        for k in keys:
            self._refresh_outcome(k)

    def _refresh_outcome(self, key: PolicyKey) -> None:
        pristine = self._outcomes.get(key)
        if pristine is None:
            return
        sources = sorted(self._sources.get(key, ()))
        extra = [w for s in sources for k, w in self._warnings.get(s, ()) if k == key]
        if not extra:
            if self._outcome(key) is not pristine:
                self._set_outcome(key, pristine)
            return
        o = PolicyOutcome(
            pristine.generation,
            pristine.accepted,
            pristine.reason,
            list(pristine.violations),
            pristine.previous_in_force,
        )
        for w in extra:
            if w not in o.violations:
                o.warn(w)
        self._set_outcome(key, o)


def _rate_limit_warnings(tp: TrafficPolicy) -> list[Violation]:
    return [
        Violation(f"spec.rules[{i}].rateLimit.global", "not enforced: the Mesh has no spec.rateLimitService", "warning")
        for i, rule in enumerate(tp.spec.rules)
        if rule.rate_limit is not None and rule.rate_limit.global_ is not None
    ]
