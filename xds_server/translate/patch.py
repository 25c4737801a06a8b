"""Stage 2 for a changed proxy: the new snapshot from the previous one, touching only the changed IR elements.

:func:`snapshot_since` gives exactly ``snapshot_of_proxy(cfg)`` (same resources, bytes and versions; proven
over randomized change sequences in ``tests/unit/test_incremental_translate.py``), in time proportional to what
changed, when the new config differs from the previous one only in outbound listeners and clusters at the same
positions (the usual case: a policy or an endpoint of a service the proxy calls). Anything else takes the full
path: other elements changed, listeners added or removed, hash policies in play, a name produced twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xds_server import ir
from xds_server.snapshot import CachedResource, Snapshot
from xds_server.translate import _cluster_bytes, _extra_clusters, _outbound_bytes, snapshot_of_proxy

#: Changes beyond this share of the elements are cheaper as a full stage 2.
_MAX_SHARE = 0.25


@dataclass(frozen=True, slots=True, eq=False)
class Stage2:
    """A proxy's config with its snapshot, the base of its next :func:`snapshot_since`."""

    cfg: ir.ProxyConfig
    snapshot: Snapshot
    #: no cluster of ``cfg`` has a hash policy
    hash_free: bool
    #: no two outbound listeners of ``cfg`` share a name
    unique: bool


#: (the previous config, positions of the outbound listeners and clusters that differ): every other element of
#: the new config is the very object at the same position of the previous one
Hint = tuple[ir.ProxyConfig, tuple[int, ...], tuple[int, ...]]


def stage2(cfg: ir.ProxyConfig) -> Stage2:
    hash_free = not any(c.lb.hash_on for c in cfg.clusters)
    unique = len({lis.name for lis in cfg.outbound}) == len(cfg.outbound)
    return Stage2(cfg, snapshot_of_proxy(cfg), hash_free, unique)


def snapshot_since(previous: Stage2 | None, cfg: ir.ProxyConfig, hint: Hint | None = None) -> Stage2:
    """``snapshot_of_proxy(cfg)`` (as ``.snapshot``), derived from ``previous`` (the proxy's last config and its
    snapshot) where that is sound. ``hint`` (from the translator that patched the config) saves comparing every
    element; it is used only when it is about ``previous.cfg``."""
    if previous is None:
        return stage2(cfg)
    if previous.cfg is cfg:
        return previous
    if hint is not None and hint[0] is not previous.cfg:
        hint = None
    patched = _patch(previous, cfg, hint) if previous.hash_free and previous.unique else None
    return patched if patched is not None else stage2(cfg)


def _changed(a: Sequence[object], b: Sequence[object]) -> list[int] | None:
    if len(a) != len(b):
        return None
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x is not y]


def _patch(previous: Stage2, cfg: ir.ProxyConfig, hint: Hint | None) -> Stage2 | None:
    old, snap = previous.cfg, previous.snapshot
    if (
        old.mesh != cfg.mesh
        or old.node != cfg.node
        or old.inbound != cfg.inbound
        or old.transparent is not None
        or cfg.transparent is not None
    ):
        return None
    if len(old.outbound) != len(cfg.outbound) or len(old.clusters) != len(cfg.clusters):
        return None
    if hint is not None:
        outbound: list[int] | None = list(hint[1])
        clusters: list[int] | None = list(hint[2])
    else:
        outbound = _changed(old.outbound, cfg.outbound)
        clusters = _changed(old.clusters, cfg.clusters)
    if outbound is None or clusters is None:
        return None
    if len(outbound) + len(clusters) > _MAX_SHARE * (len(cfg.outbound) + len(cfg.clusters)) + 8:
        return None
    # Hash policies make listeners depend on clusters: the previous config has none (``hash_free``), and a
    # changed cluster that brings one takes the full path.
    if any(cfg.clusters[i].lb.hash_on for i in clusters):
        return None
    mesh, node = cfg.mesh, cfg.node
    pairs: list[tuple[tuple[CachedResource, ...], tuple[CachedResource, ...]]] = []
    if outbound:  # (outbound names are unique in ``old``, see ``Stage2.unique``; a changed one is checked below)
        for i in outbound:
            pairs.append((_outbound_bytes(old.outbound[i], mesh, ()), _outbound_bytes(cfg.outbound[i], mesh, ())))
    extra = {c.name for c in _extra_clusters(cfg)} if clusters else set()
    for i in clusters:
        a, b = old.clusters[i], cfg.clusters[i]
        if a.name != b.name or a.name in extra:
            return None
        region, zone = (node.region, node.zone) if a.lb.locality_aware else ("", "")
        before = _cluster_bytes(a, mesh, region, zone)
        region, zone = (node.region, node.zone) if b.lb.locality_aware else ("", "")
        pairs.append((before, _cluster_bytes(b, mesh, region, zone)))
    changes: dict[str, dict[str, CachedResource]] = {}
    for before, after in pairs:
        if [(r.type_url, r.name) for r in before] != [(r.type_url, r.name) for r in after]:
            return None
        for was, now in zip(before, after, strict=True):
            # the resource in the snapshot must be this element's (names are unique per type here, see above)
            held = snap.of_type(was.type_url).get(was.name)
            if held is None or (held is not was and held != was):
                return None
            if now != held:  # an equal resource (e.g. CDS of a cluster whose endpoints changed) stays as it is
                changes.setdefault(now.type_url, {})[now.name] = now
    for type_url, by_name in changes.items():
        snap = snap.replacing(type_url, by_name)
    return Stage2(cfg, snap, True, True)
