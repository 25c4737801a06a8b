"""Every snapshot the translator produces holds everything its listeners and clusters refer to; the check of a change
by what changed (still_consistent) agrees with the check of everything, over random change sequences."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from mesh_operator.loader import load_paths
from mesh_operator.translate import translate_mesh
from xds_server.consistency import missing_references, still_consistent
from xds_server.layered import GONE, Layered, LayeredSeq
from xds_server.sds import bundle_secret
from xds_server.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, TYPE_ORDER, CachedResource, Snapshot
from xds_server.translate import snapshot_of_proxy

ROOT = Path(__file__).parents[2]


def _with_secrets(snap: Snapshot) -> list:  # type: ignore[type-arg]
    items = [r for by_name in snap.resources.values() for r in by_name.values()]
    return [*items, bundle_secret("default", b"x"), bundle_secret("ROOTCA", b"x")]


def test_every_proxy_snapshot_of_every_golden_case_and_example_is_consistent() -> None:
    sources = [ROOT / "examples" / "mesh", *sorted((ROOT / "tests" / "golden" / "cases").glob("*/input.yaml"))]
    checked = 0
    for source in sources:
        for cfg in translate_mesh(load_paths([source]).state()).proxies.values():
            snap = Snapshot.from_resources(_with_secrets(snapshot_of_proxy(cfg)))
            assert missing_references(cfg, snap) == [], (source, cfg.node.id)
            checked += 1
    assert checked >= 20


def test_a_snapshot_missing_a_clusters_endpoints_is_reported() -> None:
    cfg = translate_mesh(load_paths([ROOT / "examples" / "mesh"]).state()).proxies["shop/frontend"]
    items = [r for r in _with_secrets(snapshot_of_proxy(cfg)) if not (r.type_url == ENDPOINT and r.name.endswith("v2"))]
    assert missing_references(cfg, Snapshot.from_resources(items)) == ["ClusterLoadAssignment/backend.shop|8080|v2"]


def _changed(rng: random.Random, cfg, snap: Snapshot):  # type: ignore[no-untyped-def]
    """One random change as the incremental translator carries it: a listener or cluster renamed at its position
    (a LayeredSeq), its resources renamed too or not; a resource replaced or removed (a Layered map)."""
    types = {t: snap.of_type(t) for t in TYPE_ORDER}
    kind = rng.choice(["listener", "cluster", "replace", "remove"])
    fresh = f"n{rng.randrange(10**6)}"
    if kind in ("listener", "cluster"):
        field = "outbound" if kind == "listener" else "clusters"
        seq = getattr(cfg, field)
        i = rng.randrange(len(seq))
        cfg = replace(cfg, **{field: LayeredSeq.over(seq, {i: replace(seq[i], name=fresh)})})
        for t in (LISTENER, ROUTE) if kind == "listener" else (CLUSTER, ENDPOINT):
            if rng.random() < 0.8:  # (else: the renamed one's resource is missing)
                types[t] = Layered.over(types[t], {fresh: CachedResource.of(t, fresh, b"x")})
    else:
        t = rng.choice([LISTENER, ROUTE, CLUSTER, ENDPOINT])
        name = rng.choice(list(types[t]))
        value = GONE if kind == "remove" else CachedResource.of(t, name, fresh.encode())
        types[t] = Layered.over(types[t], {name: value})
    return cfg, Snapshot._of_frozen(types, {})


@pytest.mark.parametrize("seed", range(30))
def test_a_change_checked_by_what_changed_gives_the_verdict_of_checking_everything(seed: int) -> None:
    rng = random.Random(seed)
    cfg = translate_mesh(load_paths([ROOT / "examples" / "mesh"]).state()).proxies["shop/loadgen"]
    snap = Snapshot.from_resources(_with_secrets(snapshot_of_proxy(cfg)))
    told = 0
    for _ in range(20):
        new_cfg, new_snap = _changed(rng, cfg, snap)
        missing = missing_references(new_cfg, new_snap)
        if still_consistent(cfg, snap, new_cfg, new_snap):
            assert missing == []
            told += 1
        if not missing:
            cfg, snap = new_cfg, new_snap  # (the control plane checks the next change against a consistent one)
    assert told > 0  # (the check by what changed answers, not only the fallback)
