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
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from itertools import compress
from operator import is_not

from mesh_operator.api import AccessPolicy, AuthenticationPolicy, RetryPolicy, TrafficPolicy
from mesh_operator.api.mesh import Mesh
from mesh_operator.translate import MeshTranslation, translate_mesh
from mesh_operator.translate.policies import Rejection, Resolved, key_of, resolve
from mesh_operator.translate.proxy import ProxyBuilder, mesh_settings
from mesh_operator.translate.state import MeshState, Policy, Refused, ServiceInfo, WorkloadInfo
from mesh_operator.translate.status import PolicyKey, PolicyOutcome
from mesh_operator.translate.traffic import ServiceRouting
from mesh_operator.validation.violations import Violation
from xds_server import ir

__all__ = ["Translator"]


class _Unknown(Exception):
    """A policy kind this module has no slot rule for: the full path translates (see :func:`_slots`)."""


_KINDS = (TrafficPolicy, RetryPolicy, AccessPolicy, AuthenticationPolicy)


def _slots(key: PolicyKey, p: Policy | None) -> set[str]:
    """The slots one version of a policy occupies: what resolve may decide together with other policies.
    A new policy kind needs its rule here (until then every translation with it takes the full path)."""
    out = {f"k:{key}"}
    if p is None:
        return out
    if not isinstance(p, _KINDS):
        raise _Unknown(p.kind)
    ns, ref = p.metadata.namespace, p.spec.target_ref
    if isinstance(p, RetryPolicy) and ref.kind != "Service":
        out.add(f"t:{ns}/{ref.name}")
    else:
        out.add(f"s:{ns}/{ref.name}")
    if isinstance(p, TrafficPolicy):
        out.add(f"t:{ns}/{p.metadata.name}")
    return out


@dataclass
class _Index:
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
        self._reset()

    def _reset(self) -> None:
        self._fresh = True
        self._mesh: Mesh | None = None
        self._settings: ir.MeshSettings | None = None
        self._services: dict[str, ServiceInfo] = {}
        self._workloads: dict[str, WorkloadInfo] = {}
        self._by_id: dict[int, tuple[Policy, PolicyKey]] = {}
        self._seen: tuple[Policy, ...] | None = None
        self._duplicates = False
        self._pending: set[PolicyKey] = set()
        self._current: dict[PolicyKey, Policy] = {}
        self._refused_by_id: dict[int, tuple[Refused, PolicyKey]] = {}
        self._refused: dict[PolicyKey, Refused] = {}
        self._last_good: dict[PolicyKey, Policy] = {}
        self._verdicts: dict[PolicyKey, Rejection] = {}
        self._index = _Index()
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
        self._final: dict[PolicyKey, PolicyOutcome] = {}

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
            except _Unknown:
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
                patched = self._patch(builder, w, self._deps[node][1] & touched, previous_routing)
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
            self._positions[node] = _positions(cfg)
            # services this proxy started or stopped calling may have become (un)routed
            self._callers_changed |= called ^ self._remember_node(w)
        if builder.failures:
            return None
        if added_or_removed:
            self._proxies = dict(sorted(self._proxies.items()))
        self._workloads = state.workloads
        self.changed = nodes
        self._refresh_warnings(builder, touched)
        return MeshTranslation(dict(self._proxies), dict(self._final), {}, dict(self._in_force))

    def current(self, state: MeshState) -> dict[PolicyKey, Policy]:
        """``{key_of(p): p for p in state.policies}``, computing keys only for policy objects not seen before."""
        if self._fresh or state.mesh is not self._mesh or not self._diff_objects(state):
            return {key_of(p): p for p in state.policies}
        return dict(self._current)

    def _diff_objects(self, state: MeshState) -> bool:
        """Take in the policy objects of ``state`` (changed keys go to ``_pending``); False when two share a key."""
        if state.policies is self._seen:
            return not self._duplicates
        ids = set(map(id, state.policies))
        for i in self._by_id.keys() - ids:
            _, k = self._by_id.pop(i)
            self._pending.add(k)
            if self._current.get(k) is not None and id(self._current[k]) == i:
                del self._current[k]
        added = ids - self._by_id.keys()
        for p in compress(state.policies, map(added.__contains__, map(id, state.policies))) if added else ():
            i = id(p)
            k = key_of(p)
            self._by_id[i] = (p, k)
            self._current[k] = p
            self._pending.add(k)
        self._seen = state.policies
        self._duplicates = len(self._current) != len(state.policies)
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
        for k, p in last_good.items():
            if self._last_good.get(k) is not p:
                changed.add(k)
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
        return _slots(k, current) | _slots(k, previous)

    def _diff_services(self, services: dict[str, ServiceInfo]) -> set[str]:
        old = self._services
        if services is old:
            return set()
        changed = _changed_keys(old, services)
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
        for k in keys:
            self._outcomes.pop(k, None)
            self._used.pop(k, None)
            self._in_force.pop(k, None)
            self._final.pop(k, None)
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
        self._final.update(r.outcomes)
        self._used.update(r.used)
        self._in_force.update(r.in_force())

    # ------------------------------------------------------------------------------------------------ proxies

    def _dirty_nodes(self, state: MeshState, services: set[str]) -> tuple[set[str], set[str]]:
        """The proxies to rebuild, and those of them whose only change is in services they call."""
        old, new = self._workloads, state.workloads
        nodes = set() if new is old else _changed_keys(old, new)
        whole = set(nodes)
        for s in services:
            whole |= self._servers.get(s, set())
            nodes |= self._callers.get(s, set())
        if services:
            whole |= self._transparent
        nodes |= whole
        return nodes, nodes - whole

    def _patch(
        self,
        builder: ProxyBuilder,
        w: WorkloadInfo,
        services: Iterable[str],
        previous: dict[str, ServiceRouting],
    ) -> tuple[ir.ProxyConfig, tuple[int, ...], tuple[int, ...]] | None:
        """A proxy whose workload and served services are unchanged, after a change of some services it calls:
        its previous IR with those services' listeners and clusters replaced (what ``builder.build(w)`` gives),
        and the positions replaced. None where that is not certain (tracing, a service appearing or
        disappearing, other cluster names)."""
        assert self._settings is not None
        prev, positions = self._proxies.get(w.node_id), self._positions.get(w.node_id)
        if prev is None or positions is None or self._settings.tracing is not None or prev.transparent is not None:
            return None
        outbound = list(prev.outbound)
        clusters = list(prev.clusters)
        changed_outbound: list[int] = []
        changed_clusters: list[int] = []
        for key in services:
            target, old = self._services.get(key), previous.get(key)
            if target is None or old is None:
                return None
            at = positions.get(target.host)
            if not at:
                return None
            new = builder.routing(key)
            if len(new.clusters) != len(old.clusters):
                return None
            for i in at:
                outbound[i] = builder.outbound_listener(key, target, new, prev.outbound[i].port)
                changed_outbound.append(i)
            for a, b in zip(old.clusters, new.clusters, strict=True):
                i = bisect_left(clusters, a.name, key=_name)
                if a.name != b.name or i == len(clusters) or clusters[i] is not a:  # the IR holds the old cluster
                    return None
                clusters[i] = b
                changed_clusters.append(i)
        cfg = replace(prev, outbound=tuple(outbound), clusters=tuple(clusters))
        return cfg, tuple(sorted(set(changed_outbound))), tuple(sorted(set(changed_clusters)))

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
            self._final[key] = pristine
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
        self._final[key] = o


def _changed_keys(old: Mapping[str, object], new: Mapping[str, object]) -> set[str]:
    """Keys added, removed, or whose value changed (not the same object and not equal: rebuilt equal objects,
    as local mode and the adapter make, are no change). The identity scan runs in C."""
    candidates = compress(new.keys(), map(is_not, map(old.get, new.keys()), new.values()))
    changed = {k for k in candidates if old.get(k) != new[k]}
    changed.update(old.keys() - new.keys())
    return changed


def _name(c: ir.Cluster) -> str:
    return c.name


def _positions(cfg: ir.ProxyConfig) -> dict[str, tuple[int, ...]]:
    out: dict[str, list[int]] = {}
    for i, lis in enumerate(cfg.outbound):
        out.setdefault(lis.service, []).append(i)
    return {host: tuple(at) for host, at in out.items()}


def _rate_limit_warnings(tp: TrafficPolicy) -> list[Violation]:
    return [
        Violation(f"spec.rules[{i}].rateLimit.global", "not enforced: the Mesh has no spec.rateLimitService", "warning")
        for i, rule in enumerate(tp.spec.rules)
        if rule.rate_limit is not None and rule.rate_limit.global_ is not None
    ]
