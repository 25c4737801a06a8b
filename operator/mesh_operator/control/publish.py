"""Publishing a build: every proxy's snapshot with its two secrets (its certificate, the trust bundle) into the xDS
cache, and the per-proxy maps the status needs (desired version, identity, the policies and resource provenance
its config carries).

O(changed): when the build tells which proxies changed (:attr:`Built.changed`) and follows the build published
last, only those are walked, plus the proxies whose certificate was issued, renewed or dropped since
(:meth:`CertificateManager.take_changed`, :meth:`~CertificateManager.due`); the maps handed on are layered over the
previous ones (:class:`xds_server.layered.Layered`). Every other case walks every proxy, the reference path: the
first build, one after a build that was not published, a changed trust bundle, proxies failing now or in the last
round, a proxy added, removed or given another identity, every leaf reissued at once (root rotation). Both give the
same cache contents and maps (``tests/unit/test_publish_incremental.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from mesh_operator.control.build import Built
from mesh_operator.control.certs import CertificateManager
from xds_server.cache import SnapshotCache
from xds_server.consistency import missing_references, still_consistent
from xds_server.errors import CertificateError
from xds_server.layered import Layered, changed_since
from xds_server.sds import bundle_secret, certificate_secret
from xds_server.snapshot import SECRET, Snapshot


@dataclass
class Published:
    #: node id -> snapshot version it should have
    desired: Mapping[str, str] = field(default_factory=dict)
    #: node id -> its SPIFFE identity (only that peer is served the node's resources)
    identities: Mapping[str, str] = field(default_factory=dict)
    #: node id -> the policies (``Kind/ns/name``) its config carries
    policies_by_node: Mapping[str, set[str]] = field(default_factory=dict)
    #: node id -> Envoy resource name -> the policies it carries
    resources_by_node: Mapping[str, Mapping[str, set[str]]] = field(default_factory=dict)
    #: node id -> why it keeps the config it had
    failed: dict[str, str] = field(default_factory=dict)
    #: proxies walked to make this (every one on the reference path)
    walked: int = 0


@dataclass
class _Round:
    desired: dict[str, str] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)
    policies: dict[str, set[str]] = field(default_factory=dict)
    resources: dict[str, Mapping[str, set[str]]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


class Publisher:
    def __init__(self, certs: CertificateManager, cache: SnapshotCache) -> None:
        self.certs = certs
        self.cache = cache
        self.last = Published()
        self._number: int | None = None
        self._bundle: bytes | None = None
        #: identity -> the nodes holding it (kept by the reference path; the other never changes it)
        self._nodes_of: dict[str, set[str]] = {}
        self._policy_sets: dict[str, _PolicySet] = {}
        #: node -> (built snapshot, config, leaf, trust bundle, the snapshot assembled from them, what it misses)
        self._assembled: dict[str, tuple[Snapshot, Any, Any, bytes, Snapshot, list[str]]] = {}

    def publish(self, built: Built) -> Published:
        bundle_pem = self.certs.bundle.to_pem()
        nodes = self._changed_nodes(built, bundle_pem)
        published = self._changed(built, bundle_pem, nodes) if nodes is not None else None
        if published is None:
            published = self._all(built, bundle_pem)
        self.last, self._number, self._bundle = published, built.number, bundle_pem
        return published

    # ------------------------------------------------------------------ the two paths

    def _changed_nodes(self, built: Built, bundle_pem: bytes) -> set[str] | None:
        """The proxies to walk, or None when every proxy must be (see the module docstring)."""
        last = self.last
        if (
            built.changed is None
            or self._number is None
            or built.number != self._number + 1
            or bundle_pem != self._bundle
            or built.failed
            or last.failed
        ):
            return None
        issued = self.certs.take_changed()
        if issued is None:
            return None
        nodes = set(built.changed)
        for identity in issued | self.certs.due():
            nodes |= self._nodes_of.get(identity, set())
        if any(n not in built.snapshots or n not in last.identities for n in nodes):
            return None  # a proxy added or removed
        return nodes

    def _changed(self, built: Built, bundle_pem: bytes, nodes: set[str]) -> Published | None:
        last, r = self.last, _Round()
        walked: set[str] = set()
        pending = nodes
        while pending:
            for node_id in sorted(pending):
                self._node(node_id, built, bundle_pem, r)
            walked |= pending
            issued = self.certs.take_changed()  # (a leaf renewed just now: every proxy holding it gets it)
            if issued is None:
                return None
            pending = {n for i in issued for n in self._nodes_of.get(i, ())} - walked
        if r.failed or any(r.identities[n] != last.identities[n] for n in walked):
            return None  # failure and identity bookkeeping: the reference path
        return Published(
            Layered.over(last.desired, r.desired),
            Layered.over(last.identities, r.identities),
            Layered.over(last.policies_by_node, r.policies),
            Layered.over(last.resources_by_node, r.resources),
            {},
            len(walked),
        )

    def _all(self, built: Built, bundle_pem: bytes) -> Published:
        last, r = self.last, _Round()
        r.failed = dict(built.failed)
        for node_id in r.failed:
            if node_id in last.identities:
                r.identities[node_id] = last.identities[node_id]
            r.policies[node_id] = last.policies_by_node.get(node_id, set())
            r.resources[node_id] = last.resources_by_node.get(node_id, {})
            self._keep_previous(node_id, r)
        for node_id in built.snapshots:
            self._node(node_id, built, bundle_pem, r)
        for gone in set(last.identities) - set(r.identities):
            self.cache.clear_snapshot(gone)
        for table in (self._policy_sets, self._assembled):
            for gone in [n for n in table if n not in built.snapshots]:
                del table[gone]
        self.certs.forget_except(set(r.identities.values()))
        self.certs.take_changed()  # (every proxy's leaf was just looked at)
        self._nodes_of = {}
        for node_id, identity in r.identities.items():
            self._nodes_of.setdefault(identity, set()).add(node_id)
        return Published(r.desired, r.identities, r.policies, r.resources, r.failed, len(built.snapshots))

    # ------------------------------------------------------------------ one proxy

    def _node(self, node_id: str, built: Built, bundle_pem: bytes, r: _Round) -> None:
        resources = built.snapshots[node_id]
        cfg = built.translation.proxies[node_id]
        r.identities[node_id] = cfg.node.spiffe_id
        r.resources[node_id] = by_resource = built.resources.get(node_id, {})
        held = self._policy_sets.get(node_id)
        if held is None or held.by_resource is not by_resource:
            held = self._policy_sets[node_id] = _PolicySet.of(by_resource, held)
        r.policies[node_id] = held.policies
        try:
            leaf = self.certs.leaf(cfg.node.spiffe_id)
        except CertificateError as e:
            # Fail safe: the proxy keeps its last config (and certificate) rather than losing mTLS.
            r.failed[node_id] = f"cannot issue a certificate for {cfg.node.spiffe_id}: {e}"
            self._keep_previous(node_id, r)
            return
        made = self._assembled.get(node_id)
        if (
            made is None
            or made[0] is not resources
            or made[1] is not cfg
            or made[2] is not leaf
            or made[3] != bundle_pem
        ):
            # (a proxy whose built snapshot, config and secrets are the very same objects as last round keeps the
            # snapshot assembled then: only changed proxies cost work proportional to their resources)
            secrets = [
                certificate_secret(cfg.mesh.cert_secret, leaf.chain_pem, leaf.private_key_pem),
                bundle_secret(cfg.mesh.bundle_secret, bundle_pem),
            ]
            snap = resources.with_type(SECRET, {s.name: s for s in secrets})
            # (a change of a proxy that was consistent is checked by what changed, when it is carried as layers)
            ok = made is not None and not made[5] and still_consistent(made[1], made[4], cfg, snap)
            missing = [] if ok else missing_references(cfg, snap)
            made = self._assembled[node_id] = (resources, cfg, leaf, bundle_pem, snap, missing)
        snap, missing = made[4], made[5]
        if missing:
            r.failed[node_id] = f"inconsistent snapshot not sent, missing {', '.join(missing)}"
            self._keep_previous(node_id, r)
            return
        self.cache.set_snapshot(node_id, snap)
        r.desired[node_id] = snap.version

    def _keep_previous(self, node_id: str, r: _Round) -> None:
        previous = self.last.desired.get(node_id)
        if previous is not None:
            r.desired[node_id] = previous


@dataclass
class _PolicySet:
    """The policies a proxy's config carries (the union of what its resources carry), with how many resources
    carry each: a change of a few resources, layered on the map of the last round, updates it by those alone."""

    by_resource: Mapping[str, set[str]]
    counts: Counter[str]
    policies: set[str]

    @classmethod
    def of(cls, by_resource: Mapping[str, set[str]], last: _PolicySet | None) -> _PolicySet:
        keys = changed_since(last.by_resource, by_resource) if last is not None else None
        if last is None or keys is None:
            counts = Counter(chain.from_iterable(by_resource.values()))
            return cls(by_resource, counts, set(counts))
        counts, entered_or_left = last.counts, False  # (last is not used again: its counts are taken over)
        for key in keys:
            was, now = last.by_resource.get(key, ()), by_resource.get(key, ())
            if was is now or was == now:
                continue
            for ref in was:
                counts[ref] -= 1
                if not counts[ref]:
                    del counts[ref]
                    entered_or_left = True
            for ref in now:
                entered_or_left |= ref not in counts
                counts[ref] += 1
        return cls(by_resource, counts, set(counts) if entered_or_left else last.policies)
