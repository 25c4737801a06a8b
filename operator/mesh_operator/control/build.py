"""One translation of the mesh, with every failure kept to what caused it. Runs in a worker thread.

Rounds: translate (stage 1), serialize each proxy (stage 2), pre-flight the proxies whose resources are new to
Envoy. Whatever fails is pinned on the policy whose provenance the failing resource carries — that version of
the policy gets ``Accepted=False`` (``TranslationFailed`` or ``RejectedByEnvoy``) and the next round translates
without it (its last accepted version, if any, stays in force). A failure no policy explains stays with its proxy,
which keeps the config it has. Nothing here touches the event loop, the cache or the certificates.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mesh_operator.control.provenance import (
    ProxyProvenance,
    culprits,
    element_policies,
    elements,
    provenance_since,
    resource_policies,
)
from mesh_operator.translate import (
    MeshState,
    MeshTranslation,
    PolicyKey,
    Rejection,
    fingerprint,
    key_of,
    translate_mesh,
)
from mesh_operator.translate.incremental import Translator
from mesh_operator.translate.state import Policy
from mesh_operator.translate.status import REJECTED_BY_ENVOY, TRANSLATION_FAILED
from mesh_operator.validation.violations import Violation
from xds_server import ir
from xds_server.preflight import Preflight, reason_line
from xds_server.snapshot import Snapshot
from xds_server.translate import snapshot_of_proxy
from xds_server.translate.patch import Hint, Stage2, snapshot_since

#: Each round can only pin failures on more policies, so a few rounds settle any input.
MAX_ROUNDS = 4


@dataclass
class Built:
    translation: MeshTranslation
    #: node id -> its resources (secrets are added by the control plane); from an incremental build a read-only
    #: view, valid until the next build with the same :class:`Incremental`
    snapshots: Mapping[str, Snapshot]
    #: node id -> why it keeps the config it has
    failed: dict[str, str]
    #: every verdict reached after validation, to remember for the next translation
    rejected: dict[PolicyKey, Rejection]
    #: node id -> Envoy resource name -> the policies that resource carries (a view, as ``snapshots``)
    resources: Mapping[str, Mapping[str, set[str]]] = field(default_factory=dict)
    preflight_seconds: float = 0.0
    rounds: int = 0
    #: the proxies whose snapshot, config or provenance may differ from the previous build's with the same
    #: :class:`Incremental` (every other one's are the very same objects); None: any may
    changed: frozenset[str] | None = None
    #: this build's number among the builds with the same :class:`Incremental` (``changed`` is relative to the
    #: one before: a consumer that missed a build must take every proxy)
    number: int = 0


@dataclass
class Incremental:
    """What one control plane keeps between builds to re-derive only what changed (see
    :mod:`mesh_operator.translate.incremental`): the translator, and per proxy its last config with its snapshot
    and resource provenance. A build with it gives what a build without it gives
    (``tests/unit/test_incremental_translate.py``)."""

    translator: Translator = field(default_factory=Translator)
    #: node -> (config, snapshot), the base of the next stage 2 of that proxy
    snapshots: dict[str, Stage2] = field(default_factory=dict)
    #: node -> its current snapshot (what a build returns, but for the proxies whose stage 2 failed)
    by_node: dict[str, Snapshot] = field(default_factory=dict)
    #: proxies whose stage 2 failed: retried every round, as the full path does
    stage2_failed: set[str] = field(default_factory=set)
    resources: dict[str, ProxyProvenance] = field(default_factory=dict)
    provenance_by_node: dict[str, Mapping[str, set[str]]] = field(default_factory=dict)
    #: snapshots the pre-flight check already passed
    checked: dict[str, Snapshot] = field(default_factory=dict)
    _dirty: set[str] | None = None
    #: the proxies the last stage 2 walked (None: every one, after a full translation)
    walked: set[str] | None = None
    #: builds returned so far
    builds: int = 0
    #: the translator's patch hints since the last provenance (see :data:`xds_server.translate.patch.Hint`)
    _hints: dict[str, Hint] = field(default_factory=dict)

    def stage2(self, t: MeshTranslation, pin: _Pinner) -> Mapping[str, Snapshot]:
        """Every proxy's snapshot, serializing only the proxies the translator rebuilt (and patching theirs)."""
        tr = self.translator
        hints = tr.hints if tr.last_path == "incremental" else {}
        self._hints.update(hints)
        if tr.last_path != "incremental":
            nodes: Iterable[str] = list(t.proxies)
            self.by_node, self.stage2_failed, self._dirty, self.walked = {}, set(), None, None
            for table in (self.snapshots, self.resources, self.provenance_by_node, self.checked):
                for gone in [n for n in table if n not in t.proxies]:
                    del table[gone]
        else:
            nodes = sorted(tr.changed | self.stage2_failed)
            self.walked = set(nodes)
            if self._dirty is not None:
                self._dirty |= tr.changed
        for node in nodes:
            self.by_node.pop(node, None)
            self.stage2_failed.discard(node)
            cfg = t.proxies.get(node)
            if cfg is None:
                for table in (self.snapshots, self.resources, self.provenance_by_node, self.checked):
                    table.pop(node, None)
                continue
            try:
                done = snapshot_since(self.snapshots.get(node), cfg, hints.get(node))
            except Exception as e:
                self.stage2_failed.add(node)
                message = f"translation failed: {type(e).__name__}: {e}; please report it"
                pin(_stage2_suspects(cfg), TRANSLATION_FAILED, message, node)
                continue
            self.snapshots[node] = done
            self.by_node[node] = done.snapshot
        return MappingProxyType(self.by_node)  # (a copy would cost O(proxies) per change)

    def provenance(self, t: MeshTranslation) -> Mapping[str, Mapping[str, set[str]]]:
        """Every proxy's resource provenance, recomputed (patched) for the proxies rebuilt since the last call."""
        nodes = list(t.proxies) if self._dirty is None else self._dirty
        for node in nodes:
            cfg = t.proxies.get(node)
            if cfg is None:
                self.provenance_by_node.pop(node, None)
                continue
            done = provenance_since(self.resources.get(node), cfg, self._hints.get(node))
            self.resources[node] = done
            self.provenance_by_node[node] = done.by_resource
        self._dirty = set()
        self._hints = {}
        return MappingProxyType(self.provenance_by_node)


def build(
    state: MeshState,
    last_good: Mapping[PolicyKey, Policy],
    rejected: Mapping[PolicyKey, Rejection],
    preflight: Preflight | None,
    incremental: Incremental | None = None,
) -> Built:
    """One translation of ``state``. With ``incremental`` (kept by the caller between builds) only what changed
    since the previous build is re-derived; the result is the same."""
    # As in the pipeline's own stages: no cyclic collection (a walk over every memoized object) in between.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _build(state, last_good, rejected, preflight, incremental)
    finally:
        if enabled:
            gc.enable()


def _build(
    state: MeshState,
    last_good: Mapping[PolicyKey, Policy],
    rejected: Mapping[PolicyKey, Rejection],
    preflight: Preflight | None,
    incremental: Incremental | None,
) -> Built:
    current = {key_of(p): p for p in state.policies} if incremental is None else incremental.translator.current(state)
    verdicts = {k: v for k, v in rejected.items() if k in current and v.fingerprint == fingerprint(current[k])}
    spent = 0.0
    refused_any = False
    for round_no in range(1, MAX_ROUNDS + 1):
        if incremental is not None:
            t = incremental.translator.translate(state, last_good=last_good, rejected=verdicts)
        else:
            t = translate_mesh(state, last_good=last_good, rejected=verdicts)
        found: dict[PolicyKey, Rejection] = {}
        failed = dict(t.failed)

        pin = _Pinner(current, found, failed)
        # (an incremental translation never pins a failure itself: it takes the full path when a policy raises)
        scan = incremental is None or incremental.translator.last_path != "incremental"
        for key, outcome in t.outcomes.items() if scan else ():
            if outcome.reason == TRANSLATION_FAILED and key in current and key not in verdicts:
                found[key] = Rejection(fingerprint(current[key]), TRANSLATION_FAILED, tuple(outcome.violations))

        built: dict[str, Snapshot] = {}
        snapshots: Mapping[str, Snapshot] = incremental.stage2(t, pin) if incremental is not None else built
        for node, cfg in t.proxies.items() if incremental is None else ():
            try:
                built[node] = snapshot_of_proxy(cfg)
            except Exception as e:
                message = f"translation failed: {type(e).__name__}: {e}; please report it"
                pin(_stage2_suspects(cfg), TRANSLATION_FAILED, message, node)

        if preflight is not None and not found:
            passed = incremental.checked if incremental is not None else {}
            todo = {
                n: (t.proxies[n], s)
                for n, s in snapshots.items()
                if passed.get(n) is not s and preflight.needs_check(s)
            }
            started = time.perf_counter()
            refusals = preflight.check(todo)
            spent += time.perf_counter() - started
            if refusals:
                snapshots = {n: s for n, s in snapshots.items() if n not in refusals}
                refused_any = True
            for node, refusal in sorted(refusals.items()):
                by_resource = resource_policies(t.proxies[node])
                blamed = set(by_resource.get(refusal.resource or "", ())) or culprits(refusal.message, by_resource)
                message = f"Envoy refuses the config this produces (pre-flight check on {node}): "
                pin(blamed, REJECTED_BY_ENVOY, message + reason_line(refusal.message), node)

        if not found or round_no == MAX_ROUNDS:
            verdicts.update(found)
            resources: Mapping[str, Mapping[str, set[str]]]
            if incremental is None:
                resources = {n: resource_policies(cfg) for n, cfg in t.proxies.items()}
            else:
                resources = incremental.provenance(t)
                if preflight is not None and not found:
                    incremental.checked.update(snapshots)
            changed, number = None, 0
            if incremental is not None:
                incremental.builds += 1
                number = incremental.builds
                clean = not (refused_any or failed or incremental.stage2_failed)
                if incremental.walked is not None and round_no == 1 and clean:
                    changed = frozenset(incremental.walked)
            return Built(t, snapshots, failed, verdicts, resources, spent, round_no, changed, number)
        verdicts.update(found)
    raise AssertionError("unreachable")


@dataclass
class _Pinner:
    """Pins a failure on the policies named (that version of each is rejected), or else on the proxy."""

    current: Mapping[PolicyKey, Policy]
    found: dict[PolicyKey, Rejection]
    failed: dict[str, str]

    def __call__(self, policies: set[str], reason: str, message: str, node: str) -> None:
        keys = [k for k in self.current if str(k) in policies]
        for k in keys:
            self.found[k] = Rejection(fingerprint(self.current[k]), reason, (Violation("", message),))
        if not keys:
            self.failed[node] = message


def _stage2_suspects(cfg: ir.ProxyConfig) -> set[str]:
    """The policies of the IR elements that fail to serialize on their own."""
    blamed: set[str] = set()
    for e in elements(cfg):
        alone = dataclasses.replace(
            cfg,
            inbound=(e,) if isinstance(e, ir.InboundListener) else (),
            outbound=(e,) if isinstance(e, ir.OutboundListener) else (),
            clusters=(e,) if isinstance(e, ir.Cluster) else (),
        )
        try:
            snapshot_of_proxy(alone)
        except Exception:
            blamed |= element_policies(e)
    return blamed
