"""Workload certificates: issued per SPIFFE identity, renewed at about half their life (jittered).

The private keys live only in memory here and in the SDS secret sent to the proxy of that identity.
"""

from __future__ import annotations

import heapq
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mesh_operator.api import Mesh
from mesh_operator.api.common import duration_ms
from xds_server.ca import IssuedKeypair, Issuer, SpiffeId, TrustBundle, renewal_time
from xds_server.ca.renewal import DEFAULT_SAFETY_MARGIN

log = logging.getLogger(__name__)

#: The identity the xDS server presents to sidecars.
CONTROL_PLANE_SA = ("meshwork-system", "meshwork-control-plane")


def workload_ttl(mesh: Mesh) -> timedelta:
    """How long workload certificates live in this mesh (``spec.certificates.workloadTtl``)."""
    return timedelta(milliseconds=duration_ms(mesh.spec.certificates.workload_ttl))


@dataclass(frozen=True)
class Leaf:
    keypair: IssuedKeypair
    renew_at: datetime


class CertificateManager:
    def __init__(self, issuer: Issuer, *, leaf_ttl: timedelta, rng: random.Random | None = None) -> None:
        self.issuer = issuer
        self.leaf_ttl = leaf_ttl
        self._rng = rng or random.Random()
        self._leaves: dict[str, Leaf] = {}
        self.bundle = TrustBundle.of(issuer.root)
        #: identities whose leaf was issued or dropped since :meth:`take_changed` (None: possibly every one)
        self._changed: set[str] | None = set()
        #: (renew_at, identity) of every leaf issued, oldest first; entries of replaced or dropped leaves are
        #: skipped when they come up (what makes :meth:`due` and :meth:`next_renewal` O(due), not O(leaves))
        self._renewals: list[tuple[datetime, str]] = []

    @property
    def trust_domain(self) -> str:
        return self.issuer.trust_domain

    def control_plane_identity(self) -> SpiffeId:
        return SpiffeId(self.trust_domain, *CONTROL_PLANE_SA)

    def leaf(self, identity: str, now: datetime | None = None) -> IssuedKeypair:
        """The current certificate of ``identity``, issuing or renewing it when due."""
        now = now or datetime.now(UTC)
        current = self._leaves.get(identity)
        if current is None or now >= current.renew_at:
            keypair = self.issuer.issue_keypair(SpiffeId.parse(identity), ttl=self.leaf_ttl, now=now)
            renew_at = _renew_at(keypair, now, self._rng)
            self._leaves[identity] = current = Leaf(keypair, renew_at)
            heapq.heappush(self._renewals, (renew_at, identity))
            self._note(identity)
            log.info("issued %s serial=%x not_after=%s", identity, keypair.serial_number, keypair.not_after.isoformat())
        return current.keypair

    def next_renewal(self) -> datetime | None:
        self._drop_stale()
        return self._renewals[0][0] if self._renewals else None

    def due(self, now: datetime | None = None) -> set[str]:
        """The identities whose leaf is due for renewal at ``now`` (the next :meth:`leaf` call renews it)."""
        now = now or datetime.now(UTC)
        heap, popped = self._renewals, []
        self._drop_stale()
        while heap and heap[0][0] <= now:
            popped.append(heapq.heappop(heap))
            self._drop_stale()
        for entry in popped:  # still theirs until renewed (a renewal pushes a new entry, this one goes stale)
            heapq.heappush(heap, entry)
        return {identity for _, identity in popped}

    def take_changed(self) -> set[str] | None:
        """The identities whose leaf was issued, renewed or dropped since the last call (None: possibly any)."""
        changed, self._changed = self._changed, set()
        return changed

    def forget_except(self, identities: set[str]) -> None:
        for identity in set(self._leaves) - identities:
            del self._leaves[identity]
            self._note(identity)

    def set_leaf_ttl(self, ttl: timedelta) -> None:
        if ttl != self.leaf_ttl:
            self.leaf_ttl = ttl
            self.reissue_all()

    def reissue(self, identity: str) -> None:
        """Issue a new leaf for ``identity`` at the next translation (``meshctl certs rotate --identity``)."""
        self._leaves.pop(identity, None)
        self._note(identity)

    def reissue_all(self) -> None:
        """Issue every leaf again at the next translation (root rotation: re-sign with the new issuer)."""
        self._leaves.clear()
        self._renewals.clear()
        self._changed = None

    def _note(self, identity: str) -> None:
        if self._changed is not None:
            self._changed.add(identity)

    def _drop_stale(self) -> None:
        """Pop heap entries of leaves replaced or dropped since they were pushed."""
        heap = self._renewals
        while heap:
            renew_at, identity = heap[0]
            leaf = self._leaves.get(identity)
            if leaf is not None and leaf.renew_at == renew_at:
                return
            heapq.heappop(heap)

    def leaves(self) -> dict[str, IssuedKeypair]:
        return {k: v.keypair for k, v in self._leaves.items()}


def _renew_at(keypair: IssuedKeypair, now: datetime, rng: random.Random) -> datetime:
    """About half of the life left at issuance (not counting the backdated ``notBefore``), with jitter. The safety
    margin shrinks with short lifetimes: a fixed 5 min margin would make a 30 s certificate due at once, forever."""
    left = keypair.not_after - now
    return renewal_time(now, keypair.not_after, rng=rng, safety_margin=min(DEFAULT_SAFETY_MARGIN, left / 4))
