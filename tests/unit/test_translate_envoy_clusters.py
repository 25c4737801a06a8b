"""IR clusters -> Envoy clusters and load assignments."""

from __future__ import annotations

from datetime import timedelta

import pytest
from envoy_data_plane.envoy.config.cluster.v3 import Cluster, ClusterDiscoveryType, ClusterLbPolicy
from envoy_data_plane.envoy.config.endpoint.v3 import ClusterLoadAssignment
from envoy_data_plane.envoy.extensions.transport_sockets.tls.v3 import (
    SubjectAltNameMatcherSanType,
    TlsParametersTlsProtocol,
    UpstreamTlsContext,
)
from envoy_data_plane.envoy.extensions.upstreams.http.v3 import HttpProtocolOptions

from tests.unit import ir_samples as s
from xds_server.translate import EnvoyResources, translate_proxy


@pytest.fixture(scope="module")
def rich() -> EnvoyResources:
    return translate_proxy(s.RICH)


def cluster(res: EnvoyResources, name: str) -> Cluster:
    return next(c for c in res.clusters if c.name == name)


def cla(res: EnvoyResources, name: str) -> ClusterLoadAssignment:
    return next(c for c in res.cluster_load_assignments if c.cluster_name == name)


def test_every_cluster_is_eds_over_ads_with_its_own_name_as_service_name(rich: EnvoyResources) -> None:
    assert [c.name for c in rich.clusters] == [c.name for c in s.RICH.clusters]
    for c in rich.clusters:
        assert c.type == ClusterDiscoveryType.EDS
        assert c.eds_cluster_config is not None
        assert c.eds_cluster_config.service_name == c.name
        assert c.eds_cluster_config.eds_config.ads is not None  # type: ignore[union-attr]
        assert c.per_connection_buffer_limit_bytes == 32 * 1024
    assert [a.cluster_name for a in rich.cluster_load_assignments] == [c.name for c in rich.clusters]


def test_load_balancer_kinds_map_to_envoy_policies(rich: EnvoyResources) -> None:
    assert cluster(rich, s.LOCAL.name).lb_policy == ClusterLbPolicy.ROUND_ROBIN
    assert cluster(rich, s.RATINGS_V1.name).lb_policy == ClusterLbPolicy.LEAST_REQUEST
    assert cluster(rich, s.RATINGS_V2.name).lb_policy == ClusterLbPolicy.RING_HASH
    assert cluster(rich, s.RATINGS_MIRROR.name).lb_policy == ClusterLbPolicy.MAGLEV
    assert cluster(rich, s.DB.name).lb_policy == ClusterLbPolicy.RANDOM


def test_circuit_breakers_include_the_retry_budget(rich: EnvoyResources) -> None:
    cb = cluster(rich, s.RATINGS_V1.name).circuit_breakers
    assert cb is not None
    (t,) = cb.thresholds
    assert (t.max_connections, t.max_pending_requests, t.max_requests, t.max_retries) == (100, 50, 200, 3)
    assert t.retry_budget is not None
    assert t.retry_budget.budget_percent.value == 20.0  # type: ignore[union-attr]
    assert t.retry_budget.min_retry_concurrency == 3


def test_outlier_detection_enforces_gateway_errors_when_asked(rich: EnvoyResources) -> None:
    od = cluster(rich, s.RATINGS_V1.name).outlier_detection
    assert od is not None
    assert (od.consecutive_5xx, od.consecutive_gateway_failure, od.enforcing_consecutive_gateway_failure) == (3, 2, 100)
    assert od.interval == timedelta(seconds=5)
    assert cluster(rich, s.RATINGS_V2.name).outlier_detection is None


def test_active_health_checks_http_grpc_and_tcp(rich: EnvoyResources) -> None:
    (grpc,) = cluster(rich, s.RATINGS_V1.name).health_checks
    assert grpc.grpc_health_check is not None
    assert grpc.grpc_health_check.service_name == "ratings"
    (http,) = cluster(rich, s.RATINGS_V2.name).health_checks
    assert http.http_health_check is not None
    assert http.http_health_check.path == "/healthz"
    assert [(r.start, r.end) for r in http.http_health_check.expected_statuses] == [(200, 300), (404, 405)]
    assert (http.interval, http.timeout) == (timedelta(seconds=10), timedelta(seconds=2))
    (tcp,) = cluster(rich, s.RATINGS_MIRROR.name).health_checks
    assert tcp.tcp_health_check is not None


def test_http2_clusters_speak_h2_through_typed_protocol_options(rich: EnvoyResources) -> None:
    opts = cluster(rich, s.RATINGS_V1.name).typed_extension_protocol_options
    hpo = opts["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].unpack()
    assert isinstance(hpo, HttpProtocolOptions)
    assert hpo.explicit_http_config is not None
    assert hpo.explicit_http_config.http2_protocol_options is not None
    assert cluster(rich, s.RATINGS_V2.name).typed_extension_protocol_options == {}


def test_upstream_mtls_accepts_only_the_exact_spiffe_ids_of_the_destination(rich: EnvoyResources) -> None:
    ts = cluster(rich, s.RATINGS_V1.name).transport_socket
    assert ts is not None
    ctx = ts.typed_config.unpack()  # type: ignore[union-attr]
    assert isinstance(ctx, UpstreamTlsContext)
    assert ctx.sni == "ratings.svc"
    common = ctx.common_tls_context
    assert common is not None
    assert common.tls_params.tls_minimum_protocol_version == TlsParametersTlsProtocol.TLSv1_2  # type: ignore[union-attr]
    assert [c.name for c in common.tls_certificate_sds_secret_configs] == ["default"]
    assert common.alpn_protocols == ["h2"]
    combined = common.combined_validation_context
    assert combined is not None
    assert combined.validation_context_sds_secret_config.name == "ROOTCA"  # type: ignore[union-attr]
    (san,) = combined.default_validation_context.match_typed_subject_alt_names  # type: ignore[union-attr]
    assert san.san_type == SubjectAltNameMatcherSanType.URI
    assert san.matcher.exact == s.spiffe("shop", "ratings")  # type: ignore[union-attr]
    assert cluster(rich, s.LOCAL.name).transport_socket is None


def test_locality_aware_clusters_prefer_the_proxys_zone_then_region(rich: EnvoyResources) -> None:
    c = cluster(rich, s.RATINGS_V1.name)
    assert c.common_lb_config.locality_weighted_lb_config is not None  # type: ignore[union-attr]
    by_priority = {
        (loc.locality.region, loc.locality.zone): (loc.priority, loc.load_balancing_weight)  # type: ignore[union-attr]
        for loc in cla(rich, s.RATINGS_V1.name).endpoints
    }
    assert by_priority == {
        ("eu-west", "eu-west-1a"): (0, 1),
        ("eu-west", "eu-west-1b"): (1, 2),
        ("us-east", "us-east-1a"): (2, 3),
    }


def test_other_clusters_keep_every_locality_at_priority_zero(rich: EnvoyResources) -> None:
    assignment = cla(rich, s.RATINGS_V2.name)
    assert {loc.priority for loc in assignment.endpoints} == {0}
    assert all(loc.load_balancing_weight is None for loc in assignment.endpoints)
    eps = [lb.endpoint.address.socket_address for loc in assignment.endpoints for lb in loc.lb_endpoints]  # type: ignore[union-attr]
    assert sorted((a.address, a.port_value) for a in eps if a is not None) == [("10.0.2.1", 8080), ("10.0.2.2", 8080)]


def test_priorities_stay_contiguous_when_the_proxys_zone_has_no_endpoint() -> None:
    node = s.NODE.__class__(**{**{f: getattr(s.NODE, f) for f in s.NODE.__slots__}, "zone": "eu-west-1z"})  # type: ignore[attr-defined]
    cfg = s.RICH.__class__(node=node, mesh=s.RICH.mesh, inbound=(), outbound=(), clusters=(s.RATINGS_V1,))
    (assignment,) = translate_proxy(cfg).cluster_load_assignments
    assert sorted(loc.priority for loc in assignment.endpoints) == [0, 0, 1]


def test_clusters_name_the_policies_that_shaped_them(rich: EnvoyResources) -> None:
    md = cluster(rich, s.RATINGS_V1.name).metadata
    assert md is not None
    fields = md.filter_metadata["meshwork.io"].fields
    assert fields["policies"].string_value == s.P_CB.ref
    assert fields["service"].string_value == "ratings.shop"
