"""Snapshots: the complete, serialized xDS state for one proxy.

A :class:`Snapshot` is what the translation stage hands to the server. It is immutable, holds every resource
already serialized (``body`` is the protobuf encoding of the typed message, i.e. the ``value`` of the
``google.protobuf.Any`` that goes on the wire) and is versioned by content, so the same input gives the same
version on every replica.

A type's version is a hash of the *sum* of its resources' terms (each a 256-bit hash of name and version,
:meth:`CachedResource.term`), modulo 2**256, with their count: the order of the resources does not matter, and a
snapshot with a few resources replaced (:meth:`Snapshot.replacing`) gets its versions in time proportional to the
change, not to the proxy's size. (Finding two resource sets with one sum is a generalized-birthday problem,
about 2**32 work at 256 bits, as is a collision of the 64-bit per-resource versions: neither is the weaker; and
who can write the resources can set any config anyway. The version only tells a proxy whether anything changed.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from xds_server.layered import Layered

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

#: Make-before-break order: what a resource refers to is sent before the resource that refers to it.
TYPE_ORDER: tuple[str, ...] = (CLUSTER, ENDPOINT, SECRET, LISTENER, ROUTE)


_MOD = 1 << 256


@dataclass(frozen=True, slots=True)
class CachedResource:
    """One serialized resource. ``version`` is a hash of ``body``."""

    type_url: str
    name: str
    version: str
    body: bytes

    @classmethod
    def of(cls, type_url: str, name: str, body: bytes) -> CachedResource:
        return cls(type_url, name, hashlib.sha256(body).hexdigest()[:16], body)

    def term(self) -> int:
        """This resource's share of its type's version sum: sha256 of ``name NUL version``, as an integer. (Not
        kept on the resource: an eighth slot costs the 10k-service mesh 12 MB of peak RSS, and a snapshot keeps
        its types' sums, so a term is computed again only for resources replaced or sent to a subset.)"""
        return int.from_bytes(hashlib.sha256(f"{self.name}\0{self.version}".encode()).digest())


def type_sum(resources: Iterable[CachedResource]) -> tuple[int, int]:
    """(count, sum of terms mod 2**256) of a set of resources: what a type version is a hash of."""
    n = total = 0
    for r in resources:
        n += 1
        total += r.term()
    return n, total % _MOD


def sum_version(count_and_sum: tuple[int, int]) -> str:
    """The version string of a (count, sum) of :func:`type_sum`."""
    n, total = count_and_sum
    return hashlib.sha256(b"%d:" % n + total.to_bytes(32)).hexdigest()[:16]


def _freeze(resources: Mapping[str, Mapping[str, CachedResource]]) -> Mapping[str, Mapping[str, CachedResource]]:
    return MappingProxyType({t: MappingProxyType(dict(sorted(resources.get(t, {}).items()))) for t in TYPE_ORDER})


@dataclass(frozen=True)
class Snapshot:
    """Every resource of every type for one node. Missing types are empty."""

    resources: Mapping[str, Mapping[str, CachedResource]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "resources", _freeze(self.resources))
        object.__setattr__(self, "_version", None)
        object.__setattr__(self, "_sums", {})
        object.__setattr__(self, "_type_versions", {})

    @classmethod
    def _of_frozen(
        cls, resources: Mapping[str, Mapping[str, CachedResource]], sums: dict[str, tuple[int, int]]
    ) -> Snapshot:
        snap = cls.__new__(cls)
        object.__setattr__(snap, "resources", MappingProxyType(dict(resources)))
        object.__setattr__(snap, "_version", None)
        object.__setattr__(snap, "_sums", sums)
        object.__setattr__(snap, "_type_versions", {})
        return snap

    def replacing(self, type_url: str, changes: Mapping[str, CachedResource]) -> Snapshot:
        """This snapshot with some resources of one type replaced or added (equal to building it anew from the
        resulting items). The other types are shared, with their versions; replaced names keep their order; the
        changed type's version sum, when this snapshot has it, is updated by the change alone."""
        current = self.of_type(type_url)
        by_name: Mapping[str, CachedResource]
        replaced = [r for name in changes if (r := current.get(name)) is not None]
        if len(replaced) == len(changes):  # replaced only: same names, same order, no copy
            by_name = Layered.over(current, changes)
        else:
            by_name = MappingProxyType(dict(sorted({**current, **changes}.items())))
        resources = {**self.resources, type_url: by_name}
        sums: dict[str, tuple[int, int]] = dict(self._sums)  # type: ignore[attr-defined]
        held = sums.get(type_url)
        if held is not None:
            n, total = held
            total += sum(r.term() for r in changes.values()) - sum(r.term() for r in replaced)
            sums[type_url] = (n + len(changes) - len(replaced), total % _MOD)
        return Snapshot._of_frozen({t: resources.get(t, MappingProxyType({})) for t in TYPE_ORDER}, sums)

    def with_type(self, type_url: str, by_name: Mapping[str, CachedResource]) -> Snapshot:
        """`replacing`, after computing the version sums of the other types here, on this snapshot: an
        incremental stage 2 carries them over to the next one (updated by its changes), so the control plane
        adding a proxy's secrets costs no re-hash of a large proxy's types next round."""
        for t in TYPE_ORDER:
            if t != type_url:
                self._sum(t)
        return self.replacing(type_url, by_name)

    @classmethod
    def from_resources(cls, items: Iterable[CachedResource]) -> Snapshot:
        by_type: dict[str, dict[str, CachedResource]] = {t: {} for t in TYPE_ORDER}
        for r in items:
            by_type.setdefault(r.type_url, {})[r.name] = r
        return cls(by_type)

    def of_type(self, type_url: str) -> Mapping[str, CachedResource]:
        return self.resources.get(type_url, MappingProxyType({}))

    def _sum(self, type_url: str) -> tuple[int, int]:
        sums: dict[str, tuple[int, int]] = self._sums  # type: ignore[attr-defined]
        held = sums.get(type_url)
        if held is None:
            held = sums[type_url] = type_sum(self.of_type(type_url).values())
        return held

    def type_version(self, type_url: str) -> str:
        """Content version of one type: changes iff a resource of that type was added, removed or changed (see
        the module docstring; equal to :func:`sum_version` of :func:`type_sum` over the type's resources)."""
        versions: dict[str, str] = self._type_versions  # type: ignore[attr-defined]
        cached = versions.get(type_url)
        if cached is None:
            cached = versions[type_url] = sum_version(self._sum(type_url))
        return cached

    @property
    def version(self) -> str:
        """Content version of the whole snapshot (computed once: the snapshot is immutable)."""
        cached: str | None = getattr(self, "_version", None)
        if cached is None:
            h = hashlib.sha256()
            for t in TYPE_ORDER:
                h.update(self.type_version(t).encode())
            cached = h.hexdigest()[:16]
            object.__setattr__(self, "_version", cached)
        return cached
