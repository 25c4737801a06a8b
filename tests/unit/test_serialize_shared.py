"""Shared sub-messages (``xds_server.translate._shared`` + ``xds_server.encode.share``): equal parts of a proxy's
resources are one object, serialized once, and the snapshot's bytes stay exactly the library's ``bytes(msg)``."""

from __future__ import annotations

from envoy_data_plane.envoy.config.route.v3 import RouteConfiguration

from tests.unit import ir_samples as s
from xds_server import encode, ir
from xds_server.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE
from xds_server.translate import clear_caches, snapshot_of_proxy, translate_proxy
from xds_server.translate.route import retry_policy


def _tops(cfg: object) -> list[object]:
    res = translate_proxy(cfg)  # type: ignore[arg-type]
    return [*res.listeners, *res.route_configs, *res.clusters, *res.cluster_load_assignments]


def test_equal_route_actions_metadata_and_endpoints_of_different_resources_are_one_object() -> None:
    clear_caches()
    res = translate_proxy(s.mesh_of(4, 3))
    configs: tuple[RouteConfiguration, ...] = res.route_configs
    routes = [r for rc in configs for vh in rc.virtual_hosts for r in vh.routes]
    # the service's rules split alike except for their timeouts: no two actions may be merged wrongly
    assert len({id(r.route) for r in routes}) == len({bytes(r.route) for r in routes})  # type: ignore[arg-type]
    tagged = [r.metadata for r in routes if r.metadata is not None]
    assert len({id(m) for m in tagged}) == len({bytes(m) for m in tagged}) < len(tagged)
    clusters = [c for c in res.clusters if c.transport_socket is not None]
    v1, v2 = clusters[0], clusters[1]
    assert v1.transport_socket is v2.transport_socket  # same service, same peer identity
    assert v1.eds_cluster_config.eds_config is v2.eds_cluster_config.eds_config  # type: ignore[union-attr]
    lbs = [lb for cla in res.cluster_load_assignments for loc in cla.endpoints for lb in loc.lb_endpoints]
    assert len({id(lb) for lb in lbs}) == len({bytes(lb) for lb in lbs}) < len(lbs)


def test_with_sharing_every_resource_of_the_big_synthetic_mesh_encodes_to_the_librarys_bytes() -> None:
    clear_caches()
    tops = _tops(s.mesh_of(60, 5))
    cold = [encode.encode(m) for m in tops]  # type: ignore[arg-type]
    warm = [encode.encode(m) for m in tops]  # type: ignore[arg-type]
    assert cold == warm == [bytes(m) for m in tops]  # type: ignore[call-overload]
    assert encode.stale_shared() == []  # nothing shared was mutated after it was handed out


def test_the_server_path_gives_the_same_snapshot_bytes_with_shared_parts_cold_and_warm() -> None:
    clear_caches()
    cfg = s.RICH
    cold = snapshot_of_proxy(cfg)
    warm = snapshot_of_proxy(cfg)
    res = translate_proxy(cfg)
    expected = {
        LISTENER: {m.name: bytes(m) for m in res.listeners},
        ROUTE: {m.name: bytes(m) for m in res.route_configs},
        CLUSTER: {m.name: bytes(m) for m in res.clusters},
        ENDPOINT: {m.cluster_name: bytes(m) for m in res.cluster_load_assignments},
    }
    for snap in (cold, warm):
        assert {t: {n: r.body for n, r in snap.resources[t].items()} for t in expected} == expected
    assert encode.stale_shared() == []


def test_a_shared_message_mutated_after_it_was_encoded_is_reported_stale() -> None:
    clear_caches()
    res = translate_proxy(s.mesh_of(2, 2))
    route = res.route_configs[0].virtual_hosts[0].routes[0]
    encode.encode(route)
    assert encode.stale_shared() == []
    route.metadata.filter_metadata["meshwork.io"].fields["policies"].string_value = "changed"  # type: ignore[union-attr]
    assert "Metadata" in encode.stale_shared()
    clear_caches()


def test_clearing_the_caches_forgets_shared_objects_so_a_cold_round_builds_and_encodes_them_again() -> None:
    clear_caches()
    first = translate_proxy(s.mesh_of(2, 2)).route_configs[0].virtual_hosts[0].routes[0].metadata
    clear_caches()
    second = translate_proxy(s.mesh_of(2, 2)).route_configs[0].virtual_hosts[0].routes[0].metadata
    assert first is not second and first == second
    assert id(second) not in encode._SHARED or encode._SHARED[id(second)][1] is None


def test_budgets_of_20_and_20_point_0_are_equal_keys_but_keep_their_own_message_and_rendering() -> None:
    from xds_server import ir
    from xds_server.translate.cluster import circuit_breakers

    clear_caches()
    as_int = circuit_breakers(ir.CircuitBreakers(retry_budget=ir.RetryBudget(20, 3)))  # type: ignore[arg-type]
    as_float = circuit_breakers(ir.CircuitBreakers(retry_budget=ir.RetryBudget(20.0, 3)))
    assert as_int is not as_float
    assert as_float.thresholds[0].retry_budget.budget_percent.value.__repr__() == "20.0"  # type: ignore[union-attr]
    assert circuit_breakers(ir.CircuitBreakers(retry_budget=ir.RetryBudget(20.0, 3))) is as_float


def test_a_value_of_minus_zero_after_one_of_zero_encodes_to_its_own_bytes() -> None:
    from envoy_data_plane.google.protobuf import Value

    from xds_server.serialize import new

    clear_caches()
    zero, minus_zero = new(Value, number_value=0.0), new(Value, number_value=-0.0)
    assert encode.encode(zero) == bytes(zero)
    assert encode.encode(minus_zero) == bytes(minus_zero) != bytes(zero)


def test_services_with_the_same_retry_policy_share_one_retry_message_and_a_different_policy_gets_its_own() -> None:
    clear_caches()
    a = ir.Retry(attempts=2, retry_on=("5xx", "reset"), provenance=ir.Provenance("RetryPolicy", "ns", "a", 1))
    b = ir.Retry(attempts=2, retry_on=("5xx", "reset"), provenance=ir.Provenance("RetryPolicy", "ns", "b", 7))
    c = ir.Retry(attempts=3, retry_on=("5xx", "reset"), retriable_status_codes=(503,))
    assert retry_policy(a) is retry_policy(b)  # provenance is not in the message: one object, encoded once
    assert retry_policy(c) is not retry_policy(a)
    assert bytes(retry_policy(c)) == encode.encode(retry_policy(c)) != encode.encode(retry_policy(a))
    assert retry_policy(c).retry_on == "5xx,reset,retriable-status-codes"
    tops = _tops(s.mesh_of(6, 3))
    assert [encode.encode(m) for m in tops] == [bytes(m) for m in tops]  # type: ignore[arg-type, call-overload]
    assert encode.stale_shared() == []
