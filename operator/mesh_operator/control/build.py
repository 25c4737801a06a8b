"""One translation of the mesh, with every failure kept to what caused it. Runs in a worker thread.

Rounds: translate (stage 1), serialize each proxy (stage 2), pre-flight the proxies whose resources are new to
Envoy. Whatever fails is pinned on the policy whose provenance the failing resource carries — that version of
the policy gets ``Accepted=False`` (``TranslationFailed`` or ``RejectedByEnvoy``) and the next round translates
without it (its last accepted version, if any, stays in force). A failure no policy explains stays with its proxy,
which keeps the config it has. Nothing here touches the event loop, the cache or the certificates.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from mesh_operator.control.provenance import (
    culprits,
    element_policies,
    elements,
    resource_policies,
    resource_policies_since,
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
from xds_server.translate.patch import snapshot_since

#: Each round can only pin failures on more policies, so a few rounds settle any input.
MAX_ROUNDS = 4


@dataclass
class Built:
    translation: MeshTranslation
    #: node id -> its resources (secrets are added by the control plane)
    snapshots: dict[str, Snapshot]
    #: node id -> why it keeps the config it has
    failed: dict[str, str]
    #: every verdict reached after validation, to remember for the next translation
    rejected: dict[PolicyKey, Rejection]
    #: node id -> Envoy resource name -> the policies that resource carries
    resources: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    preflight_seconds: float = 0.0
    rounds: int = 0


@dataclass
class Incremental:
    """What one control plane keeps between builds to re-derive only what changed (see
    :mod:`mesh_operator.translate.incremental`): the translator, and per proxy its last config with its snapshot
    and resource provenance. Equal results to a build without it (``tests/unit/test_incremental_build.py``)."""

    translator: Translator = field(default_factory=Translator)
    snapshots: dict[str, tuple[ir.ProxyConfig, Snapshot]] = field(default_factory=dict)
    resources: dict[str, tuple[ir.ProxyConfig, dict[str, set[str]]]] = field(default_factory=dict)
    #: snapshots the pre-flight check already passed
    checked: dict[str, Snapshot] = field(default_factory=dict)
    _keys: dict[int, tuple[Policy, PolicyKey]] = field(default_factory=dict)

    def snapshot(self, node: str, cfg: ir.ProxyConfig) -> Snapshot:
        snap = snapshot_since(self.snapshots.get(node), cfg)
        self.snapshots[node] = (cfg, snap)
        return snap

    def provenance(self, node: str, cfg: ir.ProxyConfig) -> dict[str, set[str]]:
        out = resource_policies_since(self.resources.get(node), cfg)
        self.resources[node] = (cfg, out)
        return out

    def current(self, policies: tuple[Policy, ...]) -> dict[PolicyKey, Policy]:
        """``{key_of(p): p for p in policies}``, computing keys only for policy objects not seen before."""
        keys = {id(p): self._keys.get(id(p)) or (p, key_of(p)) for p in policies}
        self._keys = keys
        return {k: p for p, k in keys.values()}

    def forget_except(self, nodes: Mapping[str, object]) -> None:
        for table in (self.snapshots, self.resources, self.checked):
            for gone in [n for n in table if n not in nodes]:
                del table[gone]


def build(
    state: MeshState,
    last_good: Mapping[PolicyKey, Policy],
    rejected: Mapping[PolicyKey, Rejection],
    preflight: Preflight | None,
    incremental: Incremental | None = None,
) -> Built:
    """One translation of ``state``. With ``incremental`` (kept by the caller between builds) only what changed
    since the previous build is re-derived; the result is the same."""
    current = {key_of(p): p for p in state.policies} if incremental is None else incremental.current(state.policies)
    verdicts = {k: v for k, v in rejected.items() if k in current and v.fingerprint == fingerprint(current[k])}
    spent = 0.0
    for round_no in range(1, MAX_ROUNDS + 1):
        if incremental is not None:
            t = incremental.translator.translate(state, last_good=last_good, rejected=verdicts)
        else:
            t = translate_mesh(state, last_good=last_good, rejected=verdicts)
        found: dict[PolicyKey, Rejection] = {}
        failed = dict(t.failed)

        pin = _Pinner(current, found, failed)
        for key, outcome in t.outcomes.items():
            if outcome.reason == TRANSLATION_FAILED and key in current and key not in verdicts:
                found[key] = Rejection(fingerprint(current[key]), TRANSLATION_FAILED, tuple(outcome.violations))

        snapshots: dict[str, Snapshot] = {}
        for node, cfg in t.proxies.items():
            try:
                snapshots[node] = snapshot_of_proxy(cfg) if incremental is None else incremental.snapshot(node, cfg)
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
            for node, refusal in sorted(refusals.items()):
                del snapshots[node]
                by_resource = resource_policies(t.proxies[node])
                blamed = set(by_resource.get(refusal.resource or "", ())) or culprits(refusal.message, by_resource)
                message = f"Envoy refuses the config this produces (pre-flight check on {node}): "
                pin(blamed, REJECTED_BY_ENVOY, message + reason_line(refusal.message), node)

        if not found or round_no == MAX_ROUNDS:
            verdicts.update(found)
            if incremental is None:
                resources = {n: resource_policies(cfg) for n, cfg in t.proxies.items()}
            else:
                resources = {n: incremental.provenance(n, cfg) for n, cfg in t.proxies.items()}
                incremental.forget_except(t.proxies)
                if preflight is not None and not found:
                    incremental.checked.update(snapshots)
            return Built(t, snapshots, failed, verdicts, resources, spent, round_no)
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
