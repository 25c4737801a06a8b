"""Determinism, versions and incremental translation of whole proxy snapshots."""

from __future__ import annotations

import dataclasses

from tests.unit import ir_samples as s
from xds_server import ir
from xds_server.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET
from xds_server.translate import clear_caches, snapshot_of, snapshot_of_proxy, to_proto_json, translate_proxy


def test_translating_twice_gives_identical_bytes_and_versions() -> None:
    first = snapshot_of(translate_proxy(s.RICH))
    clear_caches()
    second = snapshot_of(translate_proxy(dataclasses.replace(s.RICH)))
    assert first.version == second.version
    for type_url in (LISTENER, ROUTE, CLUSTER, ENDPOINT):
        assert {n: r.body for n, r in first.of_type(type_url).items()} == {
            n: r.body for n, r in second.of_type(type_url).items()
        }


def test_the_snapshot_holds_every_resource_by_name_and_no_secrets() -> None:
    snap = snapshot_of(translate_proxy(s.RICH))
    assert set(snap.of_type(LISTENER)) == {lis.name for lis in (*s.RICH.inbound, *s.RICH.outbound)}
    assert set(snap.of_type(CLUSTER)) == {c.name for c in s.RICH.clusters}
    assert set(snap.of_type(ENDPOINT)) == {c.name for c in s.RICH.clusters}
    assert set(snap.of_type(ROUTE)) == {"inbound|8080", "inbound|8081", s.OUT_RATINGS.name, s.OUT_DETAILS.name}
    assert dict(snap.of_type(SECRET)) == {}


def test_every_name_a_listener_or_route_refers_to_is_in_the_snapshot() -> None:
    res = translate_proxy(s.RICH)
    snap = snapshot_of(res)
    clusters = set(snap.of_type(CLUSTER))
    for rc in res.route_configs:
        doc = to_proto_json(rc)
        for vh in doc["virtual_hosts"]:
            for r in vh["routes"]:
                action = r.get("route", {})
                targets = [action["cluster"]] if "cluster" in action else []
                targets += [c["name"] for c in action.get("weighted_clusters", {}).get("clusters", [])]
                targets += [m["cluster"] for m in action.get("request_mirror_policies", [])]
                assert set(targets) <= clusters, r["name"]


def test_changing_one_route_changes_only_that_listeners_route_configuration() -> None:
    before = snapshot_of(translate_proxy(s.RICH))
    changed_route = dataclasses.replace(s.RATINGS_ROUTES[2], timeout_ms=1234)
    listener = dataclasses.replace(s.OUT_RATINGS, routes=(*s.RATINGS_ROUTES[:2], changed_route, *s.RATINGS_ROUTES[3:]))
    cfg = dataclasses.replace(s.RICH, outbound=(listener, *s.RICH.outbound[1:]))
    after = snapshot_of(translate_proxy(cfg))
    assert before.version != after.version
    for type_url in (LISTENER, CLUSTER, ENDPOINT):
        assert before.type_version(type_url) == after.type_version(type_url)
    changed = {n for n, r in after.of_type(ROUTE).items() if before.of_type(ROUTE)[n].version != r.version}
    assert changed == {s.OUT_RATINGS.name}


def test_an_unchanged_ir_element_is_not_translated_again() -> None:
    res1 = translate_proxy(s.RICH)
    cluster = dataclasses.replace(s.DETAILS, connect_timeout_ms=250)
    res2 = translate_proxy(dataclasses.replace(s.RICH, clusters=(*s.RICH.clusters[:-1], cluster)))
    assert all(a is b for a, b in zip(res1.listeners, res2.listeners, strict=True))
    assert all(a is b for a, b in zip(res1.clusters[:-1], res2.clusters[:-1], strict=True))
    assert res1.clusters[-1] is not res2.clusters[-1]


def test_an_equal_but_rebuilt_ir_reuses_the_cached_translation() -> None:
    res1 = translate_proxy(s.mesh_of(5))
    res2 = translate_proxy(s.mesh_of(5))
    assert all(a is b for a, b in zip(res1.route_configs, res2.route_configs, strict=True))


def test_a_minimal_proxy_translates_to_nothing() -> None:
    res = translate_proxy(s.MINIMAL)
    assert (res.listeners, res.route_configs, res.clusters, res.cluster_load_assignments) == ((), (), (), ())
    assert isinstance(s.MINIMAL, ir.ProxyConfig)


def test_the_servers_one_step_snapshot_equals_the_two_step_one() -> None:
    for cfg in (s.RICH, s.RICH_TEXT_LOG, s.MINIMAL, s.mesh_of(4)):
        one = snapshot_of_proxy(cfg)
        two = snapshot_of(translate_proxy(cfg))
        assert one.version == two.version
        assert {t: {n: r.body for n, r in by.items()} for t, by in one.resources.items()} == {
            t: {n: r.body for n, r in by.items()} for t, by in two.resources.items()
        }


def test_the_one_step_snapshot_reuses_serialized_resources_of_unchanged_ir() -> None:
    first = snapshot_of_proxy(s.RICH)
    cluster = dataclasses.replace(s.DETAILS, connect_timeout_ms=333)
    second = snapshot_of_proxy(dataclasses.replace(s.RICH, clusters=(*s.RICH.clusters[:-1], cluster)))
    assert second.of_type(LISTENER)[s.OUT_RATINGS.name] is first.of_type(LISTENER)[s.OUT_RATINGS.name]
    assert second.of_type(CLUSTER)[s.DETAILS.name] is not first.of_type(CLUSTER)[s.DETAILS.name]
    assert second.of_type(ENDPOINT)[s.DETAILS.name].version == first.of_type(ENDPOINT)[s.DETAILS.name].version
