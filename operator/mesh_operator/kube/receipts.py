"""Delivery receipts over every replica: this replica's own ACKs plus the ACK tables other replicas publish.

Every replica translates the same state into the same content-hash versions (certificates aside: each replica
issues its own, so Secrets are not compared), so a type version ACKed to replica B means the same config as this
replica's snapshot for that proxy. A proxy connected here is counted from
this replica's tracker (:meth:`ControlPlane.receipts`); a proxy connected only elsewhere from that replica's
published table (see ``peers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesh_operator.control import ControlPlane
from xds_server.snapshot import SECRET, TYPE_ORDER
from xds_server.sync import short_type


def _applied_elsewhere(plane: ControlPlane, node: str, acked: Mapping[str, str]) -> bool:
    """The proxy ACKed, at another replica, every non-secret type of the snapshot this replica holds for it."""
    entry = plane.cache.get(node)
    if entry is None or not isinstance(acked, Mapping):
        return False
    return all(
        acked.get(short_type(t)) == entry.prepared.type_version(t)
        for t in TYPE_ORDER
        if t != SECRET and entry.prepared.resources(t)
    )


def merged_receipts(plane: ControlPlane, remote: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per policy: ``proxies`` (affected), ``applied`` and ``rejected`` ({proxy: NACK text}) over all replicas.

    ``remote``: node id -> ``{"acked": {type: version}, "nack": text or None}`` from other replicas.
    """
    local = plane.receipts()
    if not remote:
        return local
    connected_here = set(plane.sync.proxies())
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
        applied = sum(1 for n in nodes if _applied_elsewhere(plane, n, remote[n].get("acked") or {}))
        rejected = dict(receipt.get("rejected") or {})
        rejected.update({n: str(remote[n]["nack"]) for n in nodes if remote[n].get("nack")})
        receipt["applied"] = int(receipt.get("applied", 0)) + applied
        receipt["rejected"] = rejected
        out[ref] = receipt
    return out
