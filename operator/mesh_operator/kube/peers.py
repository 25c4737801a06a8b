"""Replicas share their ACK tables through per-replica Leases, so receipts count proxies on every replica.

Each replica holds a Lease ``meshwork-acks-<hash of identity>`` (label ``meshwork.io/role: acks``) in the
operator's namespace. Its annotation ``meshwork.io/acks`` carries the replica's table of connected proxies,
``{node: [{type: ACKed version}, NACK text or null]}``, zlib-compressed and base64-encoded (about 120 bytes a
proxy: the 256 KiB annotation limit holds about 2,000). Secrets are left out: each replica issues its own
certificates, so only the other types' content versions agree across replicas. The replica rewrites the table when
it changes, at most once per ``period``, and renews it at least every ``duration / 3`` to show it is alive. Every
replica reads the others' Leases each ``period`` and ignores those not renewed within ``duration`` (a dead
replica's proxies have reconnected elsewhere by then). A type version ACKed to another replica compares directly
with the same type's version in this replica's snapshot for that proxy. No replica needs to reach another's admin
endpoint (it stays on loopback): the API server is the only shared medium, as for the leader Lease.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
import zlib
from datetime import UTC, datetime
from typing import Any

from mesh_operator.control import ControlPlane
from mesh_operator.kube.errors import ApiError
from mesh_operator.kube.lease import micro_time
from mesh_operator.kube.rest import Rest
from xds_server.snapshot import SECRET
from xds_server.sync import short_type

log = logging.getLogger(__name__)

ROLE_LABEL = "meshwork.io/role"
ACKS_ANNOTATION = "meshwork.io/acks"


def encode(table: dict[str, list[Any]]) -> str:
    raw = json.dumps(table, sort_keys=True, separators=(",", ":")).encode()
    return base64.b64encode(zlib.compress(raw, 6)).decode()


def decode(text: str) -> dict[str, list[Any]]:
    data = json.loads(zlib.decompress(base64.b64decode(text), bufsize=1 << 20))
    return data if isinstance(data, dict) else {}


def local_table(plane: ControlPlane) -> dict[str, list[Any]]:
    """node -> [{type: ACKed version}, NACK text or None] for the proxies connected here. Secrets are left out:
    each replica issues its own certificates, so only the other types' versions agree across replicas."""
    table: dict[str, list[Any]] = {}
    for node, p in plane.sync.proxies().items():
        nack = next((n.error for t in p.types.values() if (n := t.rejecting)), None)
        acked = {short_type(t): s.acked_version for t, s in p.types.items() if t != SECRET and s.acked_version}
        table[node] = [acked, nack]
    return table


def _recent(lease: dict[str, Any], duration: float) -> bool:
    renew = (lease.get("spec") or {}).get("renewTime")
    if not renew:
        return False
    try:
        at = datetime.strptime(renew, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return True  # unknown format: trust our own clock from now on
    return (datetime.now(UTC) - at).total_seconds() <= duration


class AckPublisher:
    def __init__(
        self,
        rest: Rest,
        namespace: str,
        identity: str,
        plane: ControlPlane,
        *,
        duration: float = 15.0,
        period: float = 1.0,
    ) -> None:
        self.rest, self.namespace, self.identity, self.plane = rest, namespace, identity, plane
        self.duration, self.period = duration, period
        digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
        self.name = f"meshwork-acks-{digest}"
        self._published: str | None = None
        self._published_at = -1e9
        #: other replica's lease name -> (resourceVersion, monotonic time first seen, table)
        self._others: dict[str, tuple[str, float, dict[str, list[Any]]]] = {}
        self.writes = 0

    @property
    def _base(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    async def run(self) -> None:
        while True:
            try:
                await self.publish()
                await self.refresh()
            except ApiError as e:
                log.warning("ACK table: %s", e)
            await asyncio.sleep(self.period)

    async def publish(self) -> None:
        text = encode(local_table(self.plane))
        now = time.monotonic()
        if text == self._published and now - self._published_at < self.duration / 3:
            return
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {ROLE_LABEL: "acks"},
                "annotations": {ACKS_ANNOTATION: text},
            },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.duration)),
                "renewTime": micro_time(),
            },
        }
        try:
            await self.rest.merge_patch(f"{self._base}/{self.name}", body)
        except ApiError as e:
            if e.status != 404:
                raise
            await self.rest.create(self._base, body)
        self._published, self._published_at = text, now
        self.writes += 1

    async def refresh(self) -> None:
        listing = await self.rest.get(f"{self._base}?labelSelector={ROLE_LABEL}%3Dacks")
        now = time.monotonic()
        seen: dict[str, tuple[str, float, dict[str, list[Any]]]] = {}
        for item in listing.get("items") or []:
            meta = item.get("metadata") or {}
            name = meta.get("name", "")
            if name == self.name:
                continue
            rv = meta.get("resourceVersion", "")
            previous = self._others.get(name)
            if previous is not None and previous[0] == rv:
                seen[name] = previous
                continue
            try:
                table = decode((meta.get("annotations") or {}).get(ACKS_ANNOTATION, ""))
            except (ValueError, zlib.error):
                table = {}
            # First sight of a Lease last renewed long ago (a replica that died before we started): dead at once,
            # instead of alive for one more duration. Later changes are timed by our own clock.
            seen[name] = (rv, now if previous is not None or _recent(item, self.duration) else -1e9, table)
        self._others = seen

    def remote_acks(self) -> dict[str, dict[str, Any]]:
        """node -> {"acked", "nack", "replica"} over the live other replicas."""
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for name, (_, seen_at, table) in sorted(self._others.items()):
            if now - seen_at > self.duration:
                continue  # not renewed: that replica is gone
            for node, (acked, nack) in table.items():
                out.setdefault(node, {"acked": acked, "nack": nack, "replica": name})
        return out

    def describe(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            name: {"proxies": len(table), "alive": now - seen_at <= self.duration}
            for name, (_, seen_at, table) in self._others.items()
        }
