"""Stage one of the pure pipeline: API objects + the mesh's inventory -> per-policy status + IR per proxy.

No I/O, no asyncio, no Kubernetes client: the same input gives the same output on every replica. Invalid policies
become ``Accepted=False`` outcomes and the rest of the mesh is still translated.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

from mesh_operator.translate.policies import key_of, resolve
from mesh_operator.translate.proxy import ProxyBuilder
from mesh_operator.translate.state import MeshState, WorkloadInfo, state_from_objects
from mesh_operator.translate.status import PolicyKey, PolicyOutcome
from xds_server import ir

__all__ = [
    "MeshState",
    "MeshTranslation",
    "PolicyKey",
    "PolicyOutcome",
    "WorkloadInfo",
    "key_of",
    "state_from_objects",
    "translate_mesh",
]


@dataclass(frozen=True)
class MeshTranslation:
    proxies: dict[str, ir.ProxyConfig]
    outcomes: dict[PolicyKey, PolicyOutcome]


def translate_mesh(state: MeshState, only: set[str] | None = None) -> MeshTranslation:
    """Translate the whole mesh, or only the proxies whose node ids are in ``only``."""
    # Translation makes many small acyclic objects while the memo tables hold many more: a cyclic collection in
    # between would walk them all for nothing. Pausing the collector for the call is safe and restored after.
    enabled = gc.isenabled()
    gc.disable()
    try:
        resolved = resolve(state)
        builder = ProxyBuilder(state, resolved)
        wanted = sorted(state.workloads.items())
        proxies = {node_id: builder.build(w) for node_id, w in wanted if only is None or node_id in only}
    finally:
        if enabled:
            gc.enable()
    return MeshTranslation(proxies, resolved.outcomes)
