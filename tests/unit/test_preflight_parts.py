"""How the pre-flight check splits one proxy's new resources into parts validated in parallel: every new listener in
exactly one part with every cluster it refers to, every new cluster in some part, listeners sharing an address in
one part, the parts balanced; a small check, or one worker, is one part equal to the whole. (That real Envoy's
verdict on the parts is its verdict on the whole, and a refusal in either part is pinned on its policy:
tests/envoy/test_preflight_split.py.)"""

from __future__ import annotations

from pathlib import Path

from envoy_data_plane.envoy.config.core.v3 import Address, SocketAddress
from envoy_data_plane.envoy.config.listener.v3 import AdditionalAddress, Listener

from mesh_operator.control.build import Incremental, build
from tests.envoy.inventories import fan_out
from xds_server.preflight import Preflight
from xds_server.preflight_parts import address_groups
from xds_server.preflight_wire import listener_addresses
from xds_server.serialize import encode
from xds_server.snapshot import CLUSTER, LISTENER, SECRET, Snapshot


def _snapshot(services: int) -> Snapshot:
    return build(fan_out(services), {}, {}, None, Incremental()).snapshots["b/client"]


def _new(snap: Snapshot) -> set[str]:
    return {name for t, by_name in snap.resources.items() if t != SECRET for name in by_name}


def test_a_large_check_is_split_in_balanced_parts_each_with_every_cluster_its_listeners_refer_to() -> None:
    snap = _snapshot(100)
    parts = Preflight(envoy=Path("envoy"), split_min=64)._parts(snap, _new(snap), 2)
    assert len(parts) == 2
    listeners = [r.name for p in parts for r in p.listeners]
    assert sorted(listeners) == sorted(snap.resources[LISTENER])  # each in exactly one part
    for part in parts:
        for lis in part.listeners:
            service = lis.name.split("|")[2]  # outbound|<port>|svc-<i>.b -> its cluster svc-<i>.b|80
            assert f"{service}|80" in part.clusters
    assert set().union(*(p.clusters for p in parts)) == set(snap.resources[CLUSTER])
    assert {len(p.listeners) for p in parts} == {50}


def test_a_small_check_or_a_single_worker_is_one_part_equal_to_the_whole() -> None:
    snap = _snapshot(20)
    names = _new(snap)
    preflight = Preflight(envoy=Path("envoy"), split_min=64)
    (whole,) = preflight._parts(snap, names, 2)  # 40 listeners and clusters < 64
    assert (whole,) == tuple(Preflight(envoy=Path("envoy"), split_min=1)._parts(snap, names, 1))
    assert [r.name for r in whole.listeners] == list(snap.resources[LISTENER])
    assert whole.clusters == set(snap.resources[CLUSTER])
    assert Preflight(envoy=Path("envoy"), split_min=0)._parts(snap, names, 2) == [whole]  # 0: never split
    assert len(Preflight(envoy=Path("envoy"), split_min=1)._parts(snap, names, 2)) == 2


def test_only_the_listeners_named_or_taking_a_named_route_are_checked_with_the_clusters_they_need() -> None:
    snap = _snapshot(100)
    names = {f"outbound|{20000 + i}|svc-{i}.b" for i in range(40)}  # listeners (and route configurations)
    names |= {f"svc-{i}.b|80" for i in range(60, 100)}  # clusters no checked listener refers to
    parts = Preflight(envoy=Path("envoy"), split_min=64)._parts(snap, names, 2)
    assert len(parts) == 2
    assert sorted(r.name for p in parts for r in p.listeners) == sorted(
        f"outbound|{20000 + i}|svc-{i}.b" for i in range(40)
    )
    clusters = set().union(*(p.clusters for p in parts))
    assert clusters == {f"svc-{i}.b|80" for i in [*range(40), *range(60, 100)]}


def test_listeners_sharing_an_address_are_grouped_together() -> None:
    a, b, c = b"a", b"b", b"c"
    assert address_groups([[a], [b], [a], [c, b], [], [c]]) == [[0, 2], [1, 3, 5], [4]]
    assert address_groups([]) == []


def test_a_listener_address_and_its_additional_addresses_are_read_from_its_bytes() -> None:
    main = Address(socket_address=SocketAddress(address="127.0.0.1", port_value=80))
    more = Address(socket_address=SocketAddress(address="::1", port_value=80))
    body = encode(Listener(name="l", address=main, additional_addresses=[AdditionalAddress(address=more)]))
    assert listener_addresses(body) == [encode(main), encode(more)]
    assert listener_addresses(encode(Listener(name="none"))) == []
