"""IR -> Envoy listeners: safe HTTP defaults, filter order, access policies, mTLS modes, access logs."""

from __future__ import annotations

import json

import pytest
from envoy_data_plane.envoy.config.listener.v3 import Listener
from envoy_data_plane.envoy.config.rbac.v3 import RbacAction
from envoy_data_plane.envoy.extensions.filters.http.rbac.v3 import Rbac as HttpRbac
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
    HttpConnectionManager,
    HttpConnectionManagerForwardClientCertDetails,
    HttpConnectionManagerPathWithEscapedSlashesAction,
)
from envoy_data_plane.envoy.extensions.transport_sockets.tls.v3 import (
    DownstreamTlsContext,
    SubjectAltNameMatcherSanType,
    TlsParametersTlsProtocol,
)

from tests.unit import ir_samples as s
from xds_server.translate import EnvoyResources, to_proto_json, translate_proxy
from xds_server.translate.hcm import CONNECTION_IDLE_TIMEOUT, STREAM_IDLE_TIMEOUT

KIB32 = 32 * 1024


@pytest.fixture(scope="module")
def rich() -> EnvoyResources:
    return translate_proxy(s.RICH)


def listener(res: EnvoyResources, name: str) -> Listener:
    return next(lis for lis in res.listeners if lis.name == name)


def hcm_of(lis: Listener, chain: int = 0) -> HttpConnectionManager:
    msg = lis.filter_chains[chain].filters[-1].typed_config.unpack()  # type: ignore[union-attr]
    assert isinstance(msg, HttpConnectionManager)
    return msg


def http_listeners(res: EnvoyResources) -> list[Listener]:
    return [
        lis
        for lis in res.listeners
        if lis.filter_chains[0].filters[-1].name == "envoy.filters.network.http_connection_manager"
    ]


def test_every_http_listener_gets_the_safe_connection_manager_defaults(rich: EnvoyResources) -> None:
    listeners = http_listeners(rich)
    assert len(listeners) == 4
    for lis in listeners:
        for chain in range(len(lis.filter_chains)):
            hcm = hcm_of(lis, chain)
            assert hcm.normalize_path is True
            assert hcm.merge_slashes is True
            assert hcm.path_with_escaped_slashes_action in (
                HttpConnectionManagerPathWithEscapedSlashesAction.REJECT_REQUEST,
                HttpConnectionManagerPathWithEscapedSlashesAction.UNESCAPE_AND_REDIRECT,
            )
            opts = hcm.common_http_protocol_options
            assert opts is not None
            assert opts.headers_with_underscores_action.name == "REJECT_REQUEST"
            assert opts.idle_timeout == CONNECTION_IDLE_TIMEOUT
            assert hcm.stream_idle_timeout == STREAM_IDLE_TIMEOUT
            assert hcm.request_headers_timeout is not None
            assert hcm.http2_protocol_options is not None
            assert hcm.http2_protocol_options.max_concurrent_streams == 100
            assert hcm.strip_any_host_port is True


def test_every_listener_limits_its_connection_buffers_to_32_kib(rich: EnvoyResources) -> None:
    assert all(lis.per_connection_buffer_limit_bytes == KIB32 for lis in rich.listeners)


def test_inbound_rejects_escaped_slashes_and_trusts_the_tcp_peer_not_x_forwarded_for(rich: EnvoyResources) -> None:
    hcm = hcm_of(listener(rich, "inbound|8080"))
    assert hcm.path_with_escaped_slashes_action == HttpConnectionManagerPathWithEscapedSlashesAction.REJECT_REQUEST
    assert hcm.use_remote_address is True
    assert hcm.request_timeout is not None


def test_outbound_redirects_escaped_slashes_and_leaves_the_apps_forwarding_headers_alone(
    rich: EnvoyResources,
) -> None:
    hcm = hcm_of(listener(rich, s.OUT_RATINGS.name))
    assert (
        hcm.path_with_escaped_slashes_action == HttpConnectionManagerPathWithEscapedSlashesAction.UNESCAPE_AND_REDIRECT
    )
    assert hcm.use_remote_address is False
    assert hcm.forward_client_cert_details == HttpConnectionManagerForwardClientCertDetails.SANITIZE


def test_the_app_sees_the_verified_callers_spiffe_id_in_xfcc_and_never_a_forged_one(rich: EnvoyResources) -> None:
    hcm = hcm_of(listener(rich, "inbound|8080"))
    assert hcm.forward_client_cert_details == HttpConnectionManagerForwardClientCertDetails.SANITIZE_SET
    assert hcm.set_current_client_cert_details is not None
    assert hcm.set_current_client_cert_details.uri is True


def test_http_listeners_use_rds_over_ads_named_after_the_listener(rich: EnvoyResources) -> None:
    names = {rc.name for rc in rich.route_configs}
    for lis in http_listeners(rich):
        hcm = hcm_of(lis)
        assert hcm.rds is not None
        assert hcm.rds.route_config_name == lis.name
        assert hcm.rds.config_source is not None
        assert hcm.rds.config_source.ads is not None
        assert lis.name in names


def test_outbound_filter_order_is_fault_then_router(rich: EnvoyResources) -> None:
    hcm = hcm_of(listener(rich, s.OUT_RATINGS.name))
    assert [f.name for f in hcm.http_filters] == ["envoy.filters.http.fault", "envoy.filters.http.router"]


def test_inbound_filter_order_is_deny_then_allow_then_rate_limit_then_router(rich: EnvoyResources) -> None:
    hcm = hcm_of(listener(rich, "inbound|8080"))
    assert [f.name for f in hcm.http_filters] == [
        "meshwork.rbac.deny",
        "meshwork.rbac.allow",
        "envoy.filters.http.local_ratelimit",
        "envoy.filters.http.router",
    ]


def test_an_inbound_listener_without_policies_or_limits_only_routes(rich: EnvoyResources) -> None:
    hcm = hcm_of(listener(rich, "inbound|8081"))
    assert [f.name for f in hcm.http_filters] == ["envoy.filters.http.router"]


def _rbac_filters(res: EnvoyResources) -> tuple[HttpRbac, HttpRbac]:
    hcm = hcm_of(listener(res, "inbound|8080"))
    deny, allow = (f.typed_config.unpack() for f in hcm.http_filters[:2])  # type: ignore[union-attr]
    assert isinstance(deny, HttpRbac)
    assert isinstance(allow, HttpRbac)
    return deny, allow


def test_deny_policies_are_enforced_by_a_deny_filter_keyed_by_the_meshwork_policy(rich: EnvoyResources) -> None:
    deny, _ = _rbac_filters(rich)
    assert deny.rules is not None
    assert deny.rules.action == RbacAction.DENY
    assert list(deny.rules.policies) == ["AccessPolicy/shop/deny-admin@5#no-admin"]
    assert deny.shadow_rules is None


def test_allow_policies_deny_every_request_no_allow_rule_matches(rich: EnvoyResources) -> None:
    _, allow = _rbac_filters(rich)
    assert allow.rules is not None
    assert allow.rules.action == RbacAction.ALLOW
    assert sorted(allow.rules.policies) == [
        "AccessPolicy/shop/allow-frontend@7#frontend-reads",
        "AccessPolicy/shop/allow-frontend@7#ops-anything",
    ]


def test_shadow_policies_never_enforce_but_are_evaluated_with_the_enforced_ones(rich: EnvoyResources) -> None:
    _, allow = _rbac_filters(rich)
    assert allow.rules is not None
    assert "AccessPolicy/shop/try-lockdown@1#only-frontend" not in allow.rules.policies
    assert allow.shadow_rules is not None
    assert sorted(allow.shadow_rules.policies) == sorted(
        [*allow.rules.policies, "AccessPolicy/shop/try-lockdown@1#only-frontend"]
    )
    assert allow.shadow_rules_stat_prefix == "shadow_allow_"


def test_principals_are_the_peer_certificates_spiffe_id_exact_or_prefix(rich: EnvoyResources) -> None:
    _, allow = _rbac_filters(rich)
    assert allow.rules is not None
    reads = allow.rules.policies["AccessPolicy/shop/allow-frontend@7#frontend-reads"]
    name = reads.principals[0].authenticated.principal_name  # type: ignore[union-attr]
    assert name is not None
    assert name.exact == s.spiffe("shop", "frontend")
    ops = allow.rules.policies["AccessPolicy/shop/allow-frontend@7#ops-anything"]
    prefix = ops.principals[0].authenticated.principal_name  # type: ignore[union-attr]
    assert prefix is not None
    assert prefix.prefix == "spiffe://cluster.local/ns/ops/"
    assert ops.permissions[0].any is True


def test_permissions_match_the_normalized_url_path_method_and_headers(rich: EnvoyResources) -> None:
    _, allow = _rbac_filters(rich)
    assert allow.rules is not None
    perm = allow.rules.policies["AccessPolicy/shop/allow-frontend@7#frontend-reads"].permissions[0]
    assert perm.and_rules is not None
    paths, methods, header = perm.and_rules.rules
    assert paths.or_rules is not None
    url_paths = [r.url_path.path for r in paths.or_rules.rules]  # type: ignore[union-attr]
    assert [(m.prefix, m.exact) for m in url_paths if m is not None][:2] == [("/api/", None), (None, "/")]
    assert methods.or_rules is not None
    assert [r.header.name for r in methods.or_rules.rules] == [":method", ":method"]  # type: ignore[union-attr]
    assert header.header is not None
    assert header.header.name == "x-tenant"


def test_tcp_inbound_policies_apply_to_identities_only_and_fail_closed(rich: EnvoyResources) -> None:
    lis = listener(rich, "inbound|9000")
    names = [f.name for f in lis.filter_chains[0].filters]
    assert names == ["meshwork.rbac.deny", "meshwork.rbac.allow", "envoy.filters.network.tcp_proxy"]
    deny = lis.filter_chains[0].filters[0].typed_config.unpack()  # type: ignore[union-attr]
    # The deny rule needs HTTP attributes a TCP proxy cannot see: it denies its principals outright.
    assert deny.rules.policies["AccessPolicy/shop/deny-admin@5#no-admin"].permissions[0].any is True  # type: ignore[union-attr]
    allow = lis.filter_chains[0].filters[1].typed_config.unpack()  # type: ignore[union-attr]
    assert list(allow.rules.policies) == ["AccessPolicy/shop/allow-frontend@7#ops-anything"]  # type: ignore[union-attr]


def test_strict_mtls_requires_a_client_certificate_from_the_trust_domain_over_tls_1_2_plus(
    rich: EnvoyResources,
) -> None:
    lis = listener(rich, "inbound|8080")
    assert len(lis.filter_chains) == 1
    assert not lis.listener_filters
    ts = lis.filter_chains[0].transport_socket
    assert ts is not None
    ctx = ts.typed_config.unpack()  # type: ignore[union-attr]
    assert isinstance(ctx, DownstreamTlsContext)
    assert ctx.require_client_certificate is True
    common = ctx.common_tls_context
    assert common is not None
    assert common.tls_params is not None
    assert common.tls_params.tls_minimum_protocol_version == TlsParametersTlsProtocol.TLSv1_2
    assert [c.name for c in common.tls_certificate_sds_secret_configs] == ["default"]
    combined = common.combined_validation_context
    assert combined is not None
    assert combined.validation_context_sds_secret_config is not None
    assert combined.validation_context_sds_secret_config.name == "ROOTCA"
    assert combined.default_validation_context is not None
    (san,) = combined.default_validation_context.match_typed_subject_alt_names
    assert san.san_type == SubjectAltNameMatcherSanType.URI
    assert san.matcher is not None
    assert san.matcher.prefix == "spiffe://cluster.local/"


def test_permissive_mtls_adds_a_plaintext_chain_chosen_by_the_tls_inspector(rich: EnvoyResources) -> None:
    lis = listener(rich, "inbound|8081")
    assert [f.name for f in lis.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    tls_chain, plain_chain = lis.filter_chains
    assert tls_chain.filter_chain_match is not None
    assert tls_chain.filter_chain_match.transport_protocol == "tls"
    assert tls_chain.transport_socket is not None
    assert plain_chain.filter_chain_match is not None
    assert plain_chain.filter_chain_match.transport_protocol == "raw_buffer"
    assert plain_chain.transport_socket is None


def test_listeners_name_the_policies_that_shaped_them_in_metadata(rich: EnvoyResources) -> None:
    md = listener(rich, "inbound|8080").metadata
    assert md is not None
    policies = md.filter_metadata["meshwork.io"].fields["policies"].string_value
    assert policies is not None
    assert set(policies.split(",")) == {s.P_DENY.ref, s.P_ALLOW.ref, s.P_SHADOW.ref, s.P_RATE.ref}


def test_json_access_logs_carry_status_timing_upstream_peer_identity_and_provenance(rich: EnvoyResources) -> None:
    hcm = hcm_of(listener(rich, "inbound|8080"))
    (log,) = hcm.access_log
    cfg = to_proto_json(log.typed_config.unpack())  # type: ignore[arg-type, union-attr]
    fields = cfg["log_format"]["json_format"]
    for key, command in {
        "status": "%RESPONSE_CODE%",
        "duration_ms": "%DURATION%",
        "upstream_host": "%UPSTREAM_HOST%",
        "route": "%ROUTE_NAME%",
        "response_flags": "%RESPONSE_FLAGS%",
        "peer_spiffe_id": "%DOWNSTREAM_PEER_URI_SAN%",
        "policies": "%METADATA(ROUTE:meshwork.io:policies)%",
        "details": "%RESPONSE_CODE_DETAILS%",
    }.items():
        assert fields[key] == command
    assert fields["upstream_cluster"].startswith("%UPSTREAM_CLUSTER")
    json.dumps(cfg)


def test_text_access_logs_are_one_line_per_request() -> None:
    res = translate_proxy(s.RICH_TEXT_LOG)
    hcm = hcm_of(listener(res, s.OUT_RATINGS.name))
    cfg = to_proto_json(hcm.access_log[0].typed_config.unpack())  # type: ignore[arg-type, union-attr]
    line = cfg["log_format"]["text_format_source"]["inline_string"]
    assert line.endswith("\n")
    assert line.count("\n") == 1
    assert "route=%ROUTE_NAME%" in line


def test_disabled_access_logs_configure_no_logger() -> None:
    res = translate_proxy(s.MINIMAL)
    assert res.listeners == ()
    cfg = s.RICH.__class__(
        node=s.RICH.node, mesh=s.MINIMAL.mesh, inbound=(), outbound=(s.OUT_DETAILS,), clusters=(s.DETAILS,)
    )
    assert hcm_of(translate_proxy(cfg).listeners[0]).access_log == []


def test_shadow_only_policies_add_a_filter_that_can_never_deny() -> None:
    from xds_server import ir

    inbound = ir.InboundListener(
        name="inbound|7000",
        address="0.0.0.0",
        port=15070,
        protocol="http",
        local_cluster=s.LOCAL.name,
        rbac=(s.RBAC[2],),
    )
    res = translate_proxy(ir.ProxyConfig(node=s.NODE, mesh=s.RICH.mesh, inbound=(inbound,), outbound=(), clusters=()))
    hcm = hcm_of(res.listeners[0])
    assert [f.name for f in hcm.http_filters] == ["meshwork.rbac.allow", "envoy.filters.http.router"]
    cfg = hcm.http_filters[0].typed_config.unpack()  # type: ignore[union-attr]
    assert isinstance(cfg, HttpRbac)
    assert cfg.rules is None
    assert cfg.shadow_rules is not None
    assert list(cfg.shadow_rules.policies) == ["AccessPolicy/shop/try-lockdown@1#only-frontend"]
