"""Publishing walks only the proxies that changed (mesh_operator.control.publish) and leaves the xDS cache and the
status exactly as walking every proxy would: checked after every step of random change sequences."""

from __future__ import annotations

import heapq
import random
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mesh_operator.control.build import Built, build
from mesh_operator.control.certs import CertificateManager, Leaf
from mesh_operator.control.plane import ControlPlane
from mesh_operator.translate import MeshState, state_from_objects
from xds_server.ca import store
from xds_server.layered import GONE, Layered, LayeredSeq
from xds_server.sds import bundle_secret, certificate_secret
from xds_server.snapshot import Snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import translate as bench_mesh  # (the mesh of bench/translate.py)


def _plane_and_mesh(tmp_path: Path) -> tuple[ControlPlane, MeshState]:
    """A control plane (not started) with a CA of its own, and bench/translate.py's mesh of 6 services."""
    issuer = store.load_or_create(tmp_path / "ca", "cluster.local")
    plane = ControlPlane(CertificateManager(issuer, leaf_ttl=timedelta(hours=24)))
    return plane, state_from_objects(bench_mesh.build_objects(6, 2))


def _publish_twice(plane: ControlPlane, state: MeshState) -> None:
    """Two rounds: the policies accepted in the first are last-good in the second, as in a running plane."""
    for _ in range(2):
        plane._publish(_build(plane, state), state)


def _traffic_policy_slot(state: MeshState, i: int) -> int:
    """The position of TrafficPolicy svc-``i`` in the state's policy tuple."""
    return next(n for n, p in enumerate(state.policies) if p.kind == "TrafficPolicy" and p.metadata.name == f"svc-{i}")


def _build(plane: ControlPlane, state: MeshState) -> Built:
    return build(state, dict(plane._last_good), dict(plane._rejected), None, plane._incremental)


def _assert_as_if_every_proxy_was_walked(plane: ControlPlane, built: Built) -> None:
    leaves = plane.certs.leaves()  # (not leaf(): that could issue, and so change what the next round walks)
    bundle = plane.certs.bundle.to_pem()
    for node, resources in built.snapshots.items():
        cfg = built.translation.proxies[node]
        leaf = leaves[cfg.node.spiffe_id]
        secrets = [
            certificate_secret(cfg.mesh.cert_secret, leaf.chain_pem, leaf.private_key_pem),
            bundle_secret(cfg.mesh.bundle_secret, bundle),
        ]
        want = Snapshot.from_resources([r for by in resources.resources.values() for r in by.values()] + secrets)
        got = plane.cache.snapshot(node)
        assert got is not None and got == want and got.version == want.version, node
        assert plane.status.desired[node] == want.version, node
        assert plane.identity_of(node) == cfg.node.spiffe_id, node
        assert plane.status.policies_by_node[node] == set().union(*built.resources[node].values()), node
        assert plane.status.resources_by_node[node] == built.resources[node], node
    assert set(plane.status.desired) == set(built.snapshots)
    assert set(plane.status.policies_by_node) == set(built.snapshots)
    assert set(plane._identities) == set(built.snapshots)
    assert set(plane.cache.nodes()) == set(built.snapshots)
    assert set(leaves) == {built.translation.proxies[n].node.spiffe_id for n in built.snapshots}


def _make_due(certs: CertificateManager, identity: str) -> None:
    """Time passes for one leaf: it is due for renewal now."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    certs._leaves[identity] = Leaf(certs._leaves[identity].keypair, past)
    heapq.heappush(certs._renewals, (past, identity))


@pytest.mark.parametrize("seed", range(6))
def test_random_changes_publish_what_walking_every_proxy_publishes(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    plane, state = _plane_and_mesh(tmp_path)
    all_workloads, all_services = dict(state.workloads), dict(state.services)
    generation = 2
    walked_fewer = 0
    for _ in range(40):
        action = rng.choice(["policy", "policy", "endpoints", "proxy", "reissue", "due", "reissue_all", "skip"])
        if action == "policy":
            i = rng.randrange(6)
            slot = _traffic_policy_slot(state, i)
            generation += 1
            edited = bench_mesh.traffic_policy(i, 2, generation=generation)
            state = replace(state, policies=LayeredSeq.over(state.policies, {slot: edited}))
        elif action == "endpoints":
            key = f"bench/svc-{rng.randrange(6)}"
            svc = state.services[key]
            instances = svc.instances[:1] if len(svc.instances) > 1 else all_services[key].instances
            state = replace(state, services=Layered.over(state.services, {key: replace(svc, instances=instances)}))
        elif action == "proxy":  # a pod goes away or comes back
            node = rng.choice(sorted(all_workloads))
            change = GONE if node in state.workloads else all_workloads[node]
            state = replace(state, workloads=Layered.over(state.workloads, {node: change}))
        elif plane.status.generation and action == "reissue":
            plane.certs.reissue(rng.choice(sorted(plane.certs.leaves())))
        elif plane.status.generation and action == "due":
            _make_due(plane.certs, rng.choice(sorted(plane.certs.leaves())))
        elif action == "reissue_all":
            plane.certs.reissue_all()
        built = _build(plane, state)
        if action == "skip":  # a build that is never published (the next one must walk every proxy)
            continue
        plane._publish(built, state)
        _assert_as_if_every_proxy_was_walked(plane, built)
        walked_fewer += plane._publisher.last.walked < len(built.snapshots)
    assert walked_fewer >= 5, "the O(changed) path was hardly taken: the test proves nothing about it"


def test_a_policy_change_walks_only_the_proxies_it_changed(tmp_path: Path) -> None:
    plane, state = _plane_and_mesh(tmp_path)
    _publish_twice(plane, state)
    assert plane._publisher.last.walked == len(state.workloads)
    slot = _traffic_policy_slot(state, 0)
    state = replace(state, policies=LayeredSeq.over(state.policies, {slot: bench_mesh.traffic_policy(0, 2, 5)}))
    built = _build(plane, state)
    plane._publish(built, state)
    assert built.changed is not None and "bench/edge" in built.changed
    assert plane._publisher.last.walked == len(built.changed) < len(state.workloads)
    _assert_as_if_every_proxy_was_walked(plane, built)


def test_a_renewed_certificate_reaches_every_proxy_of_that_identity_and_no_other(tmp_path: Path) -> None:
    plane, state = _plane_and_mesh(tmp_path)
    _publish_twice(plane, state)
    before = {n: plane.cache.snapshot(n) for n in state.workloads}
    identity = plane.identity_of("bench/svc-3-v1")
    assert identity is not None and identity == plane.identity_of("bench/svc-3-v2")
    _make_due(plane.certs, identity)
    built = _build(plane, state)
    plane._publish(built, state)
    changed = {n for n in state.workloads if plane.cache.snapshot(n) is not before[n]}
    assert changed == {"bench/svc-3-v1", "bench/svc-3-v2"}
    assert plane._publisher.last.walked == 2
    _assert_as_if_every_proxy_was_walked(plane, built)
