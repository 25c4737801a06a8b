"""Leader election with a ``coordination.k8s.io/v1`` Lease: exactly one replica writes status at a time.

The algorithm is client-go's: the holder renews ``spec.renewTime`` every ``renew`` seconds with an optimistic
``PUT`` (the object's ``resourceVersion``: two replicas can never both succeed); another replica takes the Lease
over once it has seen no renewal for ``duration`` seconds *by its own clock* (it times how long the Lease stayed
unchanged, so clock skew between machines does not matter). A holder that could not renew for ``deadline``
(< ``duration``) seconds stops acting as leader before anyone else may start: there is never a moment with two
writers. On a clean stop the holder releases the Lease so the next replica takes over at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from mesh_operator.kube.errors import ApiError
from mesh_operator.kube.rest import Rest

log = logging.getLogger(__name__)


def micro_time(t: datetime | None = None) -> str:
    return (t or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderLease:
    def __init__(
        self,
        rest: Rest,
        namespace: str,
        name: str,
        identity: str,
        *,
        duration: float = 15.0,
        renew: float = 2.0,
        deadline: float | None = None,
    ) -> None:
        self.rest, self.namespace, self.name, self.identity = rest, namespace, name, identity
        self.duration, self.renew = duration, renew
        self.deadline = deadline if deadline is not None else duration * 2 / 3
        self.holder: str | None = None
        self._renewed_at = -1e9  # monotonic time of our last successful acquire/renew
        self._observed: tuple[str, float] | None = None  # (resourceVersion, monotonic time first seen)
        self.transitions = 0

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    def is_leader(self) -> bool:
        return self.holder == self.identity and time.monotonic() - self._renewed_at < self.deadline

    async def run(self) -> None:
        while True:
            try:
                await self.try_acquire_or_renew()
            except ApiError as e:
                log.warning("lease %s: %s", self.name, e)
            await asyncio.sleep(self.renew)

    def _spec(self, transitions: int, acquire: str | None = None) -> dict[str, Any]:
        now = micro_time()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "acquireTime": acquire or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    async def try_acquire_or_renew(self) -> bool:
        now = time.monotonic()
        try:
            lease = await self.rest.get(self.path)
        except ApiError as e:
            if e.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(0),
            }
            try:
                await self.rest.create(self.path.rsplit("/", 1)[0], body)
            except ApiError as e2:
                if e2.status == 409:
                    return False
                raise
            return self._won(now, 0)
        spec = lease.get("spec") or {}
        meta = lease["metadata"]
        holder = spec.get("holderIdentity") or ""
        self.holder = holder or None
        rv = meta["resourceVersion"]
        if self._observed is None or self._observed[0] != rv:
            self._observed = (rv, now)
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            lease["spec"] = self._spec(transitions, spec.get("acquireTime"))
        else:
            duration = float(spec.get("leaseDurationSeconds") or self.duration)
            if holder and now - self._observed[1] < duration:
                return False  # someone else holds it and renews
            transitions += 1
            lease["spec"] = self._spec(transitions)
        try:
            await self.rest.replace(self.path, lease)
        except ApiError as e:
            if e.status == 409:  # someone else wrote first
                return False
            raise
        if holder != self.identity:
            log.info("lease %s acquired by %s (was %s)", self.name, self.identity, holder or "free")
        return self._won(now, transitions)

    def _won(self, at: float, transitions: int) -> bool:
        self.holder = self.identity
        self._renewed_at = at
        self.transitions = transitions
        return True

    async def release(self) -> None:
        """Give the Lease up (clean stop), so another replica need not wait for it to expire."""
        if self.holder != self.identity:
            return
        self.holder = None
        lease = await self.rest.get(self.path)
        if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        lease["spec"] = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": micro_time()}
        await self.rest.replace(self.path, lease)
