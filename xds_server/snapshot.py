"""Snapshots: the complete, serialized xDS state for one proxy.

A :class:`Snapshot` is what the translation stage hands to the server. It is immutable, holds every resource
already serialized (``body`` is the protobuf encoding of the typed message, i.e. the ``value`` of the
``google.protobuf.Any`` that goes on the wire) and is versioned by content, so the same input gives the same
version on every replica.
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


def _freeze(resources: Mapping[str, Mapping[str, CachedResource]]) -> Mapping[str, Mapping[str, CachedResource]]:
    return MappingProxyType({t: MappingProxyType(dict(sorted(resources.get(t, {}).items()))) for t in TYPE_ORDER})


@dataclass(frozen=True)
class Snapshot:
    """Every resource of every type for one node. Missing types are empty."""

    resources: Mapping[str, Mapping[str, CachedResource]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "resources", _freeze(self.resources))
        object.__setattr__(self, "_version", None)
        object.__setattr__(self, "_type_versions", {})

    @classmethod
    def _of_frozen(
        cls, resources: Mapping[str, Mapping[str, CachedResource]], type_versions: dict[str, str]
    ) -> Snapshot:
        snap = cls.__new__(cls)
        object.__setattr__(snap, "resources", MappingProxyType(dict(resources)))
        object.__setattr__(snap, "_version", None)
        object.__setattr__(snap, "_type_versions", type_versions)
        return snap

    def replacing(self, type_url: str, changes: Mapping[str, CachedResource]) -> Snapshot:
        """This snapshot with some resources of one type replaced or added (equal to building it anew from the
        resulting items). The other types are shared, with their versions; replaced names keep their order."""
        current = self.of_type(type_url)
        by_name: Mapping[str, CachedResource]
        if all(name in current for name in changes):  # replaced only: same names, same order, no copy
            by_name = Layered.over(current, changes)
        else:
            by_name = MappingProxyType(dict(sorted({**current, **changes}.items())))
        resources = {**self.resources, type_url: by_name}
        versions = {t: v for t, v in self._type_versions.items() if t != type_url}  # type: ignore[attr-defined]
        return Snapshot._of_frozen({t: resources.get(t, MappingProxyType({})) for t in TYPE_ORDER}, versions)

    def with_type(self, type_url: str, by_name: Mapping[str, CachedResource]) -> Snapshot:
        """`replacing`, after computing the versions of the other types here, on this snapshot: an incremental
        stage 2 carries this snapshot's versions over to the next one for the types that did not change, so the
        control plane adding a proxy's secrets costs no re-hash of a large proxy's unchanged types next round."""
        for t in TYPE_ORDER:
            if t != type_url:
                self.type_version(t)
        return self.replacing(type_url, by_name)

    @classmethod
    def from_resources(cls, items: Iterable[CachedResource]) -> Snapshot:
        by_type: dict[str, dict[str, CachedResource]] = {t: {} for t in TYPE_ORDER}
        for r in items:
            by_type.setdefault(r.type_url, {})[r.name] = r
        return cls(by_type)

    def of_type(self, type_url: str) -> Mapping[str, CachedResource]:
        return self.resources.get(type_url, MappingProxyType({}))

    def type_version(self, type_url: str) -> str:
        """Content version of one type: changes iff a resource of that type was added, removed or changed.
        (sha256 over ``name NUL version LF`` of every resource in name order; computed once per type.)"""
        versions: dict[str, str] = self._type_versions  # type: ignore[attr-defined]
        cached = versions.get(type_url)
        if cached is None:
            text = "".join([f"{name}\0{r.version}\n" for name, r in self.of_type(type_url).items()])
            cached = versions[type_url] = hashlib.sha256(text.encode()).hexdigest()[:16]
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
