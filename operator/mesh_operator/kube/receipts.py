"""Delivery receipts over every replica: this replica's own ACKs plus the ACK tables other replicas publish.

Every replica translates the same state into the same content-hash versions, so a version ACKed to replica B
means the same config as this replica's desired version for that proxy. A proxy connected here is counted from
this replica's tracker (:meth:`ControlPlane.receipts`); a proxy connected only elsewhere from that replica's
published table (see ``peers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesh_operator.control import ControlPlane


def merged_receipts(plane: ControlPlane, remote: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per policy: ``proxies`` (affected), ``applied`` and ``rejected`` ({proxy: NACK text}) over all replicas.

    ``remote``: node id -> ``{"acked": version, "nack": text or None}`` from other replicas.
    """
    local = plane.receipts()
    if not remote:
        return local
    connected_here = set(plane.sync.proxies())
    desired = plane.status.desired
    by_policy: dict[str, list[str]] = {}
    for node, refs in plane.status.policies_by_node.items():
        if node in connected_here or node not in remote:
            continue
        for ref in refs:
            by_policy.setdefault(ref, []).append(node)
    out: dict[str, dict[str, Any]] = {}
    for ref, receipt in local.items():
        receipt = dict(receipt)
        nodes = by_policy.get(ref, [])
        applied = sum(1 for n in nodes if remote[n].get("acked") == desired.get(n))
        rejected = dict(receipt.get("rejected") or {})
        rejected.update({n: str(remote[n]["nack"]) for n in nodes if remote[n].get("nack")})
        receipt["applied"] = int(receipt.get("applied", 0)) + applied
        receipt["rejected"] = rejected
        out[ref] = receipt
    return out
