"""IR routes -> Envoy RouteConfigurations: matching, splitting, mirroring, retries, rewrites, faults, limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from envoy_data_plane.envoy.config.core.v3 import HeaderValueOptionHeaderAppendAction
from envoy_data_plane.envoy.config.route.v3 import RedirectActionRedirectResponseCode, Route, RouteConfiguration
from envoy_data_plane.envoy.extensions.filters.http.fault.v3 import HttpFault
from envoy_data_plane.envoy.extensions.filters.http.local_ratelimit.v3 import LocalRateLimit
from envoy_data_plane.envoy.type.v3 import FractionalPercentDenominatorType

from tests.unit import ir_samples as s
from xds_server.translate import EnvoyResources, translate_proxy


@pytest.fixture(scope="module")
def rich() -> EnvoyResources:
    return translate_proxy(s.RICH)


def config(res: EnvoyResources, name: str) -> RouteConfiguration:
    return next(rc for rc in res.route_configs if rc.name == name)


def route(res: EnvoyResources, listener: str, name: str) -> Route:
    return next(r for r in config(res, listener).virtual_hosts[0].routes if r.name == name)


def test_there_is_one_route_configuration_per_http_listener_with_a_wildcard_virtual_host(rich: EnvoyResources) -> None:
    assert sorted(rc.name for rc in rich.route_configs) == sorted(
        ["inbound|8080", "inbound|8081", s.OUT_RATINGS.name, s.OUT_DETAILS.name]
    )
    for rc in rich.route_configs:
        (vh,) = rc.virtual_hosts
        assert vh.domains == ["*"]


def test_routes_keep_the_order_the_ir_gives_them(rich: EnvoyResources) -> None:
    names = [r.name for r in config(rich, s.OUT_RATINGS.name).virtual_hosts[0].routes]
    assert names == [r.name for r in s.RATINGS_ROUTES]


def test_path_header_method_and_query_matches_translate_one_to_one(rich: EnvoyResources) -> None:
    r = route(rich, s.OUT_RATINGS.name, "ratings-split")
    m = r.match
    assert m is not None
    assert m.prefix == "/api/"
    method, env, trace, user, debug = m.headers
    assert (method.name, method.string_match.exact) == (":method", "GET")  # type: ignore[union-attr]
    assert env.string_match.exact == "canary"  # type: ignore[union-attr]
    assert trace.present_match is True
    assert user.string_match.prefix == "test-"  # type: ignore[union-attr]
    assert debug.string_match.safe_regex.regex == "^[0-9]+$"  # type: ignore[union-attr]
    assert debug.invert_match is True
    v, q, dbg = m.query_parameters
    assert v.string_match.exact == "2"  # type: ignore[union-attr]
    assert q.string_match.safe_regex.regex == "^[a-z]+$"  # type: ignore[union-attr]
    assert dbg.present_match is True
    assert route(rich, s.OUT_RATINGS.name, "ratings-exact").match.path == "/health"  # type: ignore[union-attr]
    regex = route(rich, s.OUT_RATINGS.name, "ratings-regex").match.safe_regex  # type: ignore[union-attr]
    assert regex is not None
    assert regex.regex == "^/items/[0-9]+$"


def test_a_split_sends_weighted_traffic_and_mirrors_a_fraction(rich: EnvoyResources) -> None:
    action = route(rich, s.OUT_RATINGS.name, "ratings-split").route
    assert action is not None
    assert action.weighted_clusters is not None
    assert [(c.name, c.weight) for c in action.weighted_clusters.clusters] == [
        (s.RATINGS_V1.name, 90),
        (s.RATINGS_V2.name, 10),
    ]
    (mirror,) = action.request_mirror_policies
    assert mirror.cluster == s.RATINGS_MIRROR.name
    frac = mirror.runtime_fraction.default_value  # type: ignore[union-attr]
    assert frac is not None
    assert (frac.numerator, frac.denominator) == (125_000, FractionalPercentDenominatorType.MILLION)


def test_a_single_destination_is_a_plain_cluster(rich: EnvoyResources) -> None:
    action = route(rich, s.OUT_RATINGS.name, "ratings-default").route
    assert action is not None
    assert action.cluster == s.RATINGS_V1.name
    assert action.weighted_clusters is None


def test_retries_carry_attempts_conditions_status_codes_per_try_timeout_and_backoff(rich: EnvoyResources) -> None:
    retry = route(rich, s.OUT_RATINGS.name, "ratings-split").route.retry_policy  # type: ignore[union-attr]
    assert retry is not None
    assert retry.retry_on == "5xx,reset,connect-failure,retriable-status-codes"
    assert retry.num_retries == 3
    assert retry.retriable_status_codes == [503, 429]
    assert retry.per_try_timeout == timedelta(seconds=1)
    assert retry.retry_back_off is not None
    assert retry.retry_back_off.base_interval == timedelta(milliseconds=25)
    assert retry.retry_back_off.max_interval == timedelta(milliseconds=250)


def test_timeouts_rewrites_and_header_edits(rich: EnvoyResources) -> None:
    r = route(rich, s.OUT_RATINGS.name, "ratings-split")
    action = r.route
    assert action is not None
    assert action.timeout == timedelta(seconds=3)
    assert action.idle_timeout == timedelta(minutes=1)
    assert action.prefix_rewrite == "/v2/api/"
    assert action.host_rewrite_literal == "ratings.internal"
    sets = [(h.header.key, h.header.value, h.append_action) for h in r.request_headers_to_add]  # type: ignore[union-attr]
    assert sets == [
        ("x-mesh", "meshwork", HeaderValueOptionHeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD),
        ("x-hop", "1", HeaderValueOptionHeaderAppendAction.APPEND_IF_EXISTS_OR_ADD),
    ]
    assert r.request_headers_to_remove == ["x-internal"]
    assert [h.header.key for h in r.response_headers_to_add] == ["x-served-by"]  # type: ignore[union-attr]
    assert r.response_headers_to_remove == ["server"]


def test_a_full_path_rewrite_replaces_the_whole_path(rich: EnvoyResources) -> None:
    action = route(rich, s.OUT_RATINGS.name, "ratings-exact").route
    assert action is not None
    assert action.regex_rewrite is not None
    assert action.regex_rewrite.pattern.regex == "^.*$"  # type: ignore[union-attr]
    assert action.regex_rewrite.substitution == "/healthz"


def test_redirects_set_scheme_host_port_path_and_status(rich: EnvoyResources) -> None:
    old = route(rich, s.OUT_RATINGS.name, "ratings-old").redirect
    assert old is not None
    assert (old.scheme_redirect, old.host_redirect, old.port_redirect, old.prefix_rewrite) == (
        "https",
        "ratings.example",
        8443,
        "/new/",
    )
    assert old.response_code == RedirectActionRedirectResponseCode.MOVED_PERMANENTLY
    moved = route(rich, s.OUT_RATINGS.name, "ratings-moved").redirect
    assert moved is not None
    assert moved.path_redirect == "/here"
    assert moved.response_code == RedirectActionRedirectResponseCode.PERMANENT_REDIRECT


def test_hash_policies_come_from_the_route_or_else_from_a_hashing_cluster(rich: EnvoyResources) -> None:
    own = route(rich, s.OUT_RATINGS.name, "ratings-split").route.hash_policy  # type: ignore[union-attr]
    assert own[0].cookie is not None
    assert (own[0].cookie.name, own[0].cookie.ttl) == ("session", timedelta(hours=1))
    assert own[1].connection_properties is not None
    assert own[1].connection_properties.source_ip is True
    inherited = route(rich, s.OUT_DETAILS.name, "details-hashed").route.hash_policy  # type: ignore[union-attr]
    assert inherited[0].header is not None
    assert inherited[0].header.header_name == "x-user"
    assert route(rich, s.OUT_DETAILS.name, "details-default").route.hash_policy == []  # type: ignore[union-attr]


def test_faults_are_configured_per_route_for_the_fault_filter(rich: EnvoyResources) -> None:
    r = route(rich, s.OUT_RATINGS.name, "ratings-exact")
    fault = r.typed_per_filter_config["envoy.filters.http.fault"].unpack()
    assert isinstance(fault, HttpFault)
    assert fault.delay is not None
    assert fault.delay.fixed_delay == timedelta(milliseconds=200)
    assert fault.delay.percentage.numerator == 100_000  # type: ignore[union-attr]
    assert fault.abort is not None
    assert fault.abort.http_status == 503
    assert fault.abort.percentage.numerator == 5_000  # type: ignore[union-attr]
    assert "envoy.filters.http.fault" not in route(rich, s.OUT_RATINGS.name, "ratings-default").typed_per_filter_config


def test_rate_limits_are_a_token_bucket_per_inbound_route_enabled_and_enforced_for_all(rich: EnvoyResources) -> None:
    r = route(rich, "inbound|8080", "reviews-write-limit")
    rl = r.typed_per_filter_config["envoy.filters.http.local_ratelimit"].unpack()
    assert isinstance(rl, LocalRateLimit)
    assert rl.token_bucket is not None
    assert (rl.token_bucket.max_tokens, rl.token_bucket.tokens_per_fill) == (10, 5)
    assert rl.token_bucket.fill_interval == timedelta(seconds=1)
    for frac in (rl.filter_enabled, rl.filter_enforced):
        assert frac is not None
        assert frac.default_value is not None
        assert (frac.default_value.numerator, frac.default_value.denominator) == (
            1_000_000,
            FractionalPercentDenominatorType.MILLION,
        )
    assert rl.status is not None
    assert int(rl.status.code) == 429


def test_inbound_routes_end_with_a_catch_all_to_the_app_without_a_route_timeout(rich: EnvoyResources) -> None:
    routes = config(rich, "inbound|8080").virtual_hosts[0].routes
    assert [r.name for r in routes] == ["reviews-write-limit", "inbound-default"]
    last = routes[-1]
    assert last.match.prefix == "/"  # type: ignore[union-attr]
    assert last.route.cluster == s.LOCAL.name  # type: ignore[union-attr]
    assert last.route.timeout == timedelta(0)  # type: ignore[union-attr]


def test_routes_name_their_policy_in_metadata_and_stat_prefix(rich: EnvoyResources) -> None:
    r = route(rich, s.OUT_RATINGS.name, "ratings-split")
    assert r.metadata is not None
    policies = r.metadata.filter_metadata["meshwork.io"].fields["policies"].string_value
    assert policies == f"{s.P_TRAFFIC.ref},{s.P_RETRY.ref}"
    assert r.stat_prefix == "trafficpolicy_shop_reviews_split_ratings_split"
    assert route(rich, s.OUT_RATINGS.name, "ratings-regex").metadata is None
