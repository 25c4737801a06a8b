"""Stage one of the pure pipeline: API objects + the mesh's inventory -> per-policy status + IR per proxy.

No I/O, no asyncio, no Kubernetes client: the same input gives the same output on every replica. Invalid policies
become ``Accepted=False`` outcomes and the rest of the mesh is still translated.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from dataclasses import dataclass, field

from mesh_operator.translate.gateway import RouteOutcome
from mesh_operator.translate.policies import Rejection, fingerprint, key_of, resolve
from mesh_operator.translate.proxy import ProxyBuilder
from mesh_operator.translate.state import MeshState, Policy, Refused, WorkloadInfo, state_from_objects
from mesh_operator.translate.status import PolicyKey, PolicyOutcome
from xds_server import ir

__all__ = [
    "MeshState",
    "MeshTranslation",
    "PolicyKey",
    "PolicyOutcome",
    "Refused",
    "Rejection",
    "WorkloadInfo",
    "fingerprint",
    "key_of",
    "state_from_objects",
    "translate_mesh",
]


@dataclass(frozen=True)
class MeshTranslation:
    #: (a read-only view from the incremental translator, valid until its next translation)
    proxies: Mapping[str, ir.ProxyConfig]
    #: (from the incremental translator: a read-only map that stays valid)
    outcomes: Mapping[PolicyKey, PolicyOutcome]
    #: node id -> why its config could not be built (it keeps what it has)
    failed: dict[str, str] = field(default_factory=dict)
    #: the accepted current version of each policy in force
    in_force: Mapping[PolicyKey, Policy] = field(default_factory=dict)
    #: Gateway API routes (HTTPRoute/GRPCRoute) -> their verdict per Service parent (translate/gateway.py)
    routes: dict[PolicyKey, RouteOutcome] = field(default_factory=dict)


def translate_mesh(
    state: MeshState,
    only: set[str] | None = None,
    *,
    last_good: Mapping[PolicyKey, Policy] | None = None,
    rejected: Mapping[PolicyKey, Rejection] | None = None,
) -> MeshTranslation:
    """Translate the whole mesh, or only the proxies whose node ids are in ``only``.

    Failures stay with what caused them: a policy whose translation raises is marked ``TranslationFailed`` and
    left out, a proxy whose config cannot be built is listed in ``failed``; everything else is translated.
    ``last_good`` and ``rejected`` are explained in :func:`~mesh_operator.translate.policies.resolve`."""
    # Translation makes many small acyclic objects while the memo tables hold many more: a cyclic collection in
    # between would walk them all for nothing. Pausing the collector for the call is safe and restored after.
    enabled = gc.isenabled()
    gc.disable()
    try:
        resolved = resolve(state, last_good, rejected)
        builder = ProxyBuilder(state, resolved)
        proxies: dict[str, ir.ProxyConfig] = {}
        failed: dict[str, str] = {}
        for node_id, w in sorted(state.workloads.items()):
            if only is not None and node_id not in only:
                continue
            try:
                proxies[node_id] = builder.build(w)
            except Exception as e:  # contained to this proxy: it keeps its last config
                failed[node_id] = f"translation failed: {type(e).__name__}: {e}"
    finally:
        if enabled:
            gc.enable()
    return MeshTranslation(proxies, resolved.outcomes, failed, resolved.in_force(), builder.gateway.outcomes)
