"""The control plane assembles a proxy's snapshot (its resources + its two secrets) again only when something it
is made of changed: the published snapshots are always what assembling every proxy from scratch gives."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from mesh_operator.control.build import build
from mesh_operator.control.certs import CertificateManager
from mesh_operator.control.plane import ControlPlane
from mesh_operator.translate import MeshState, state_from_objects
from xds_server.ca import store
from xds_server.sds import bundle_secret, certificate_secret
from xds_server.snapshot import Snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import translate as bench_mesh  # (the mesh of bench/translate.py)


def _round(plane: ControlPlane, state: MeshState) -> dict[str, Snapshot]:
    built = build(state, dict(plane._last_good), dict(plane._rejected), None, plane._incremental)
    plane._publish(built, state)
    out: dict[str, Snapshot] = {}
    for node, resources in built.snapshots.items():
        cfg = built.translation.proxies[node]
        leaf = plane.certs.leaf(cfg.node.spiffe_id)
        secrets = [
            certificate_secret(cfg.mesh.cert_secret, leaf.chain_pem, leaf.private_key_pem),
            bundle_secret(cfg.mesh.bundle_secret, plane.certs.bundle.to_pem()),
        ]
        want = Snapshot.from_resources([r for by in resources.resources.values() for r in by.values()] + secrets)
        got = plane.cache.snapshot(node)
        assert got is not None and got == want and got.version == want.version, node
        assert plane.status.desired[node] == want.version
        out[node] = got
    return out


def test_only_proxies_whose_config_or_certificate_changed_get_a_newly_assembled_snapshot(tmp_path: Path) -> None:
    issuer = store.load_or_create(tmp_path / "ca", "cluster.local")
    plane = ControlPlane(CertificateManager(issuer, leaf_ttl=timedelta(hours=24)))
    state = state_from_objects(bench_mesh.build_objects(6, 2))
    _round(plane, state)
    first = _round(plane, state)  # (the second round: the policies accepted in the first are now last-good)

    # one TrafficPolicy edited: the proxies reading it are reassembled, every other keeps its snapshot object
    slot = next(i for i, p in enumerate(state.policies) if p.kind == "TrafficPolicy" and p.metadata.name == "svc-0")
    policies = list(state.policies)
    policies[slot] = bench_mesh.traffic_policy(0, 2, generation=2)
    state = replace(state, policies=tuple(policies))
    second = _round(plane, state)
    changed = {n for n in first if second[n] is not first[n]}
    rebuilt = plane._incremental.translator.changed
    assert "bench/edge" in changed and changed <= rebuilt and len(rebuilt) < len(first)

    # one identity's certificate reissued: that identity's proxies get the new certificate secret, others not
    identity = plane.identity_of("bench/svc-3-v1")
    assert identity is not None
    plane.certs.reissue(identity)
    third = _round(plane, state)
    assert {n for n in second if third[n] is not second[n]} == {n for n in second if plane.identity_of(n) == identity}
