"""Bootstrap documents: the static rendering of a proxy and the ADS bootstrap of a live sidecar."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit import ir_samples as s
from xds_server.errors import TranslationError
from xds_server.translate import ads_bootstrap, render_bootstrap, to_proto_json, translate_proxy


def _walk(node: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(node, dict):
        out.append(node)
        for v in node.values():
            out += _walk(v)
    elif isinstance(node, list):
        for v in node:
            out += _walk(v)
    return out


@pytest.fixture(scope="module")
def static() -> dict[str, Any]:
    return render_bootstrap(
        s.RICH, translate_proxy(s.RICH), cert_chain_pem="CERT", private_key_pem="KEY", trust_bundle_pem="CA"
    )


def test_the_static_bootstrap_inlines_routes_and_endpoints_and_needs_no_xds_server(static: dict[str, Any]) -> None:
    assert "dynamic_resources" not in static
    dicts = _walk(static)
    assert not [d for d in dicts if "rds" in d or "eds_cluster_config" in d or "sds_config" in d or "ads" in d]
    clusters = static["static_resources"]["clusters"]
    assert {c["type"] for c in clusters} == {"STATIC"}
    assert all(c["load_assignment"]["cluster_name"] == c["name"] for c in clusters)
    inline_routes = [d["route_config"]["name"] for d in dicts if "route_config" in d]
    # The permissive listener has two filter chains (mTLS and plaintext), each with its own connection manager.
    assert sorted(inline_routes) == sorted(
        ["inbound|8080", "inbound|8081", "inbound|8081", s.OUT_RATINGS.name, s.OUT_DETAILS.name]
    )
    json.dumps(static)


def test_the_static_bootstrap_resolves_sds_names_to_static_secrets(static: dict[str, Any]) -> None:
    secrets = {sec["name"]: sec for sec in static["static_resources"]["secrets"]}
    assert secrets["default"]["tls_certificate"] == {
        "certificate_chain": {"inline_string": "CERT"},
        "private_key": {"inline_string": "KEY"},
    }
    assert secrets["ROOTCA"]["validation_context"] == {"trusted_ca": {"inline_string": "CA"}}


def test_the_static_bootstrap_binds_admin_to_loopback_and_names_the_node(static: dict[str, Any]) -> None:
    assert static["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 15000}
    assert static["node"] == {
        "id": "shop/reviews",
        "cluster": "meshwork",
        "locality": {"region": "eu-west", "zone": "eu-west-1a"},
    }


def test_rendering_without_certificate_material_for_a_used_secret_is_an_error() -> None:
    with pytest.raises(TranslationError, match="is referenced but no PEM"):
        render_bootstrap(s.RICH, translate_proxy(s.RICH))
    render_bootstrap(s.MINIMAL, translate_proxy(s.MINIMAL))


def test_rendering_does_not_touch_the_cached_messages() -> None:
    res = translate_proxy(s.RICH)
    before = [to_proto_json(m) for m in res.listeners]
    render_bootstrap(s.RICH, res, cert_chain_pem="C", private_key_pem="K", trust_bundle_pem="B")
    assert [to_proto_json(m) for m in res.listeners] == before


def test_the_ads_bootstrap_speaks_http2_to_the_xds_server_and_gets_lds_and_cds_over_ads() -> None:
    doc = ads_bootstrap(s.NODE, "10.0.0.9", 15010, 15001)
    dyn = doc["dynamic_resources"]
    assert dyn["ads_config"]["api_type"] == "GRPC"
    assert dyn["ads_config"]["transport_api_version"] == "V3"
    assert dyn["lds_config"] == {"ads": {}, "resource_api_version": "V3"}
    assert dyn["cds_config"] == {"ads": {}, "resource_api_version": "V3"}
    (xds,) = doc["static_resources"]["clusters"]
    assert dyn["ads_config"]["grpc_services"][0]["envoy_grpc"]["cluster_name"] == xds["name"]
    opts = xds["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in opts["explicit_http_config"]
    assert xds["type"] == "STATIC"
    assert doc["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    assert "transport_socket" not in xds


def test_the_ads_bootstrap_resolves_a_host_name_and_can_use_mtls_with_an_exact_server_identity() -> None:
    doc = ads_bootstrap(
        s.NODE,
        "xds.meshwork-system.svc",
        15012,
        cert_chain_path="/creds/cert.pem",
        private_key_path="/creds/key.pem",
        ca_path="/creds/ca.pem",
        server_spiffe_id="spiffe://cluster.local/ns/meshwork-system/sa/meshwork",
        delta=True,
    )
    (xds,) = doc["static_resources"]["clusters"]
    assert xds["type"] == "STRICT_DNS"
    ctx = xds["transport_socket"]["typed_config"]
    assert ctx["sni"] == "xds.meshwork-system.svc"
    assert ctx["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "URI", "matcher": {"exact": "spiffe://cluster.local/ns/meshwork-system/sa/meshwork"}}
    ]
    assert doc["dynamic_resources"]["ads_config"]["api_type"] == "DELTA_GRPC"
    with pytest.raises(TranslationError):
        ads_bootstrap(s.NODE, "x", 1, cert_chain_path="/c.pem")


def test_proto_json_of_a_resource_carries_its_type_url() -> None:
    doc = to_proto_json(translate_proxy(s.RICH).clusters[1])
    assert doc["@type"] == "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    assert doc["outlier_detection"]["consecutive_5xx"] == 3
