"""Every snapshot the translator produces holds everything its listeners and clusters refer to."""

from __future__ import annotations

from pathlib import Path

from mesh_operator.loader import load_paths
from mesh_operator.translate import translate_mesh
from xds_server.consistency import missing_references
from xds_server.sds import bundle_secret
from xds_server.snapshot import ENDPOINT, Snapshot
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
