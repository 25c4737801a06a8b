"""The pre-flight's binary bootstrap (spliced from the bytes the proxies receive) is the document
``render_bootstrap`` builds as proto-JSON, field for field, for every proxy of every golden case and of the
example mesh. (That real Envoy accepts and refuses what it should through it: tests/envoy/test_envoy_rejects_table.py,
tests/envoy/test_validation_implies_envoy_accepts.py, tests/envoy/test_preflight_cache.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from envoy_data_plane.envoy.config.bootstrap.v3 import Bootstrap

from mesh_operator.loader import load_paths, load_text
from mesh_operator.translate import MeshState, translate_mesh
from xds_server.preflight_wire import WireError, fields, static_bootstrap, strings
from xds_server.serialize import proto_dict
from xds_server.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE
from xds_server.translate import render_bootstrap, snapshot_of_proxy, translate_proxy

ROOT = Path(__file__).parents[2]
CASES = sorted(p.name for p in (ROOT / "tests/golden/cases").iterdir() if (p / "input.yaml").is_file())
MATERIAL = ("CHAIN", "KEY", "BUNDLE")


def _state(case: str) -> MeshState:
    if case == "examples/mesh":
        return load_paths([ROOT / "examples/mesh"]).state()
    return load_text((ROOT / "tests/golden/cases" / case / "input.yaml").read_text(), "input.yaml").state()


def _normal(doc: Any, top: bool = True) -> Any:
    """proto-JSON with the default enum value spelled out or not (``type: STATIC`` is the default), the static
    resources in name order (a snapshot keeps them sorted by name, the translator in its own order)."""
    if top:
        doc = dict(
            doc, static_resources={k: sorted(v, key=lambda x: x["name"]) for k, v in doc["static_resources"].items()}
        )
        return _normal(doc, top=False)
    if isinstance(doc, dict):
        return {k: _normal(v, False) for k, v in doc.items() if not (k == "type" and v == "STATIC")}
    if isinstance(doc, list):
        return [_normal(v, False) for v in doc]
    return doc


@pytest.mark.parametrize("case", [*CASES, "examples/mesh"])
def test_the_binary_bootstrap_equals_the_rendered_one_for_every_proxy(case: str) -> None:
    translation = translate_mesh(_state(case))
    assert translation.proxies
    for node, cfg in translation.proxies.items():
        snap = snapshot_of_proxy(cfg)
        body = {
            t: {n: r.body for n, r in snap.resources.get(t, {}).items()} for t in (LISTENER, ROUTE, CLUSTER, ENDPOINT)
        }
        chain, key, bundle = MATERIAL
        expected = render_bootstrap(
            cfg, translate_proxy(cfg), cert_chain_pem=chain, private_key_pem=key, trust_bundle_pem=bundle
        )
        wire = static_bootstrap(
            cfg, list(body[LISTENER].values()), list(body[CLUSTER].values()), body[ROUTE], body[ENDPOINT], MATERIAL
        )
        got = proto_dict(Bootstrap().parse(wire))
        assert _normal(got) == _normal(expected), node


def test_a_listener_or_cluster_named_anywhere_in_a_resource_is_among_its_strings() -> None:
    cfg = next(iter(translate_mesh(_state("basic")).proxies.values()))
    snap = snapshot_of_proxy(cfg)
    clusters = {n.encode() for n in snap.resources[CLUSTER]}
    referenced = set().union(*(strings(r.body) for r in snap.resources[ROUTE].values())) & clusters
    assert referenced  # the routes of "basic" send to clusters
    assert all(r.body.find(n) >= 0 for r in snap.resources[ROUTE].values() for n in strings(r.body) & clusters)


def test_bytes_that_are_not_a_message_are_refused_not_misread() -> None:
    with pytest.raises(WireError):
        fields(b"\x0a\x05ab")  # a 5-byte string with 2 bytes
    with pytest.raises(WireError):
        fields(b"\x0b")  # wire type 3 (groups): never produced by the translator
