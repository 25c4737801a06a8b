"""Gateway API mesh routes, unit level: validation with field paths, Gateway API precedence, producer vs consumer
routes, conflicts with a TrafficPolicy, and status.parents[] merging with other controllers' entries."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mesh_operator.api.gateway import CONTROLLER_NAME
from mesh_operator.loader import load_text
from mesh_operator.translate import translate_mesh
from mesh_operator.translate.gateway_status import route_status, xmesh_status
from mesh_operator.validation import validate_document

INVENTORY = """
apiVersion: meshwork.io/v1alpha1
kind: Inventory
metadata: {name: t}
spec:
  services:
    - name: web
      namespace: shop
      ports: [{port: 80}]
      instances: [{name: web-1, port: 9001, sidecar: {inboundPort: 15001}}]
    - name: a
      namespace: shop
      ports: [{port: 80}]
      instances: [{name: a-1, port: 9002, sidecar: {inboundPort: 15002}}]
    - name: b
      namespace: shop
      ports: [{port: 80}]
      instances: [{name: b-1, port: 9003, sidecar: {inboundPort: 15003}}]
  clients:
    - {name: inside, namespace: shop, sidecar: {upstreams: [{service: web, localPort: 16000}]}}
    - {name: outside, namespace: other, sidecar: {upstreams: [{service: web.shop, localPort: 16000}]}}
    - {name: third, namespace: third, sidecar: {upstreams: [{service: web.shop, localPort: 16000}]}}
"""


def route(name: str, ns: str, rules: list[dict[str, Any]], **meta: Any) -> str:
    parent = {"group": "", "kind": "Service", "name": "web", "namespace": "shop"}
    doc = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns, **meta},
        "spec": {"parentRefs": [parent], "rules": rules},
    }
    return "---\n" + yaml.safe_dump(doc)


def routes_of(text: str, node: str) -> list[tuple[str, str]]:
    """(route name, first cluster or 'redirect') of the node's outbound routes, in Envoy's match order."""
    state = load_text(INVENTORY + text, "t.yaml").state()
    proxy = translate_mesh(state).proxies[node]
    (listener,) = proxy.outbound
    return [(r.name.split("/", 1)[1], r.clusters[0].cluster if r.clusters else "redirect") for r in listener.routes]


def test_an_invalid_route_is_refused_with_every_field_path() -> None:
    doc = yaml.safe_load(
        route(
            "bad",
            "shop",
            [
                {
                    "name": "x",
                    "matches": [{"path": {"type": "RegularExpression", "value": "(["}}],
                    "filters": [{"type": "RequestHeaderModifier"}],
                    "timeouts": {"request": "1s", "backendRequest": "2s"},
                },
                {"name": "x", "backendRefs": [{"name": "a", "weight": -1}]},
            ],
        )
    )
    checked = validate_document(doc)
    paths = {v.path for v in checked.violations}
    assert paths == {"spec.rules[1].backendRefs[0].weight"}  # a schema error: the object does not parse
    del doc["spec"]["rules"][1]["backendRefs"]
    checked = validate_document(doc)
    assert {v.path for v in checked.violations} == {
        "spec.rules[0].name",
        "spec.rules[1].name",
        "spec.rules[0].matches[0].path.value",
        "spec.rules[0].filters[0].requestHeaderModifier",
        "spec.rules[0].timeouts.backendRequest",
    }


def test_a_gateway_api_document_of_the_wrong_version_or_kind_is_refused_with_the_field() -> None:
    wrong = validate_document({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "HTTPRoute"})
    assert [v.path for v in wrong.violations] == ["apiVersion"]
    unknown = validate_document({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "TLSRoute"})
    assert [v.path for v in unknown.violations] == ["kind"]


def test_rules_of_several_routes_are_ordered_as_the_gateway_api_specifies() -> None:
    older = route(
        "older",
        "shop",
        [
            {"name": "catch-all", "backendRefs": [{"name": "a", "port": 80}]},
            {
                "name": "short-prefix",
                "matches": [{"path": {"value": "/x"}}],
                "backendRefs": [{"name": "a", "port": 80}],
            },
        ],
        creationTimestamp="2026-01-01T00:00:00Z",
    )
    newer = route(
        "newer",
        "shop",
        [
            {
                "name": "long-prefix",
                "matches": [{"path": {"value": "/x/y"}}],
                "backendRefs": [{"name": "b", "port": 80}],
            },
            {
                "name": "exact",
                "matches": [{"path": {"type": "Exact", "value": "/x"}}],
                "backendRefs": [{"name": "b", "port": 80}],
            },
            {"name": "same-prefix", "matches": [{"path": {"value": "/x"}}], "backendRefs": [{"name": "b", "port": 80}]},
            {
                "name": "method",
                "matches": [{"path": {"value": "/x"}, "method": "GET"}],
                "backendRefs": [{"name": "b", "port": 80}],
            },
        ],
        creationTimestamp="2026-02-01T00:00:00Z",
    )
    names = [n for n, _ in routes_of(older + newer, "shop/inside")]
    assert [n.split("/", 2)[2] for n in names] == [
        "newer/exact",  # exact path first
        "newer/long-prefix",  # then the longest prefix
        "newer/method",  # same prefix: a method match wins
        "older/short-prefix",  # same prefix, same matches: the oldest route wins
        "newer/same-prefix",
        "older/catch-all",
    ]


def test_a_consumer_route_applies_only_to_its_namespace_and_the_producer_route_to_everyone_else() -> None:
    producer = route("prod", "shop", [{"backendRefs": [{"name": "a", "port": 80}]}])
    consumer = route("cons", "other", [{"backendRefs": [{"name": "web", "namespace": "shop", "port": 80}]}])
    text = producer + consumer
    assert routes_of(text, "shop/inside") == [("HTTPRoute/shop/prod/rule-0", "a.shop|80")]
    assert routes_of(text, "third/third") == [("HTTPRoute/shop/prod/rule-0", "a.shop|80")]
    assert routes_of(text, "other/outside") == [("HTTPRoute/other/cons/rule-0", "web.shop|80")]
    # Without routes, callers get the built-in catch-all to the Service itself.
    assert routes_of("", "other/outside") == [("default", "web.shop|80")]


def test_a_consumer_route_may_not_send_traffic_to_another_namespace_service_than_its_parent() -> None:
    consumer = route("cons", "other", [{"backendRefs": [{"name": "a", "namespace": "shop", "port": 80}]}])
    state = load_text(INVENTORY + consumer, "t.yaml").state()
    (parent,) = translate_mesh(state).routes[next(iter(translate_mesh(state).routes))].parents
    assert (parent.accepted, parent.resolved, parent.resolved_reason) == (True, False, "RefNotPermitted")
    assert routes_of(consumer, "other/outside")[0][1] == "web.shop|80"  # fallback cluster, aborted with 500
    proxy = translate_mesh(state).proxies["other/outside"]
    fault = proxy.outbound[0].routes[0].fault
    assert fault is not None and (fault.abort_status, fault.abort_percent) == (500, 100.0)


def test_a_trafficpolicy_on_the_same_service_is_warned_that_its_rules_are_superseded() -> None:
    tp = """
---
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: shop}
spec:
  targetRef: {name: web}
  rules: [{name: r, timeouts: {request: 2s}}]
"""
    producer = route("prod", "shop", [{"backendRefs": [{"name": "a", "port": 80}]}])
    state = load_text(INVENTORY + tp + producer, "t.yaml").state()
    outcome = next(o for k, o in translate_mesh(state).outcomes.items() if k.kind == "TrafficPolicy")
    assert outcome.accepted and outcome.reason == "AcceptedWithWarnings"
    assert "superseded by HTTPRoute/shop/prod" in outcome.message
    # The rule's 2 s timeout does not leak into the route (15 s: the built-in default).
    route_ir = translate_mesh(state).proxies["shop/inside"].outbound[0].routes[0]
    assert route_ir.timeout_ms == 15_000


@pytest.mark.parametrize(
    ("parent", "reason"),
    [
        ({"group": "", "kind": "Service", "name": "nope"}, "NoMatchingParent"),
        ({"group": "", "kind": "Service", "name": "web", "port": 81}, "NoMatchingParent"),
        ({"group": "", "kind": "Service", "name": "web", "sectionName": "http"}, "UnsupportedValue"),
    ],
)
def test_a_parent_that_cannot_take_the_route_is_not_accepted_with_the_standard_reason(
    parent: dict[str, Any], reason: str
) -> None:
    doc = yaml.safe_load(route("r", "shop", [{"backendRefs": [{"name": "a", "port": 80}]}]))
    doc["spec"]["parentRefs"] = [parent]
    state = load_text(INVENTORY + "---\n" + yaml.safe_dump(doc), "t.yaml").state()
    (outcome,) = translate_mesh(state).routes.values()
    (po,) = outcome.parents
    assert (po.accepted, po.accepted_reason) == (False, reason)
    assert [r.name for r in translate_mesh(state).proxies["shop/inside"].outbound[0].routes] == ["web.shop/default"]


def test_route_status_keeps_other_controllers_entries_and_replaces_only_ours() -> None:
    state = load_text(INVENTORY + route("r", "shop", [{"backendRefs": [{"name": "a", "port": 80}]}]), "t").state()
    (outcome,) = translate_mesh(state).routes.values()
    theirs = {"parentRef": {"name": "gw"}, "controllerName": "example.com/gw", "conditions": []}
    stale_ours = {"parentRef": {"name": "old"}, "controllerName": CONTROLLER_NAME, "conditions": []}
    status = route_status(outcome, "shop", {"parents": [theirs, stale_ours]}, {"proxies": 3, "applied": 2})
    assert status["parents"][0] == theirs
    (ours,) = status["parents"][1:]
    assert ours["parentRef"] == {"group": "", "kind": "Service", "name": "web", "namespace": "shop"}
    conditions = {c["type"]: (c["status"], c["reason"], c["message"]) for c in ours["conditions"]}
    assert conditions["Accepted"][:2] == ("True", "Accepted")
    assert conditions["meshwork.io/Applied"] == ("False", "Pending", "2/3 proxies applied it")


def test_xmesh_status_lists_supported_features_sorted_and_unique() -> None:
    status = xmesh_status(4, ["b", "a", "b"])
    assert status["supportedFeatures"] == [{"name": "a"}, {"name": "b"}]
    assert status["conditions"][0]["observedGeneration"] == 4


def test_once_a_route_is_attached_a_request_matching_no_rule_has_no_route_and_gets_404() -> None:
    only = route("only", "shop", [{"matches": [{"path": {"value": "/x"}}], "backendRefs": [{"name": "a", "port": 80}]}])
    assert routes_of(only, "shop/inside") == [("HTTPRoute/shop/only/rule-0", "a.shop|80")]


def test_a_route_with_an_invalid_regex_is_not_accepted_and_no_proxy_gets_it() -> None:
    bad = route("bad", "shop", [{"matches": [{"path": {"type": "RegularExpression", "value": "(["}}]}])
    loaded = load_text(INVENTORY + bad, "t.yaml")
    assert [p.violation.path for p in loaded.errors] == ["spec.rules[0].matches[0].path.value"]
    translation = translate_mesh(loaded.state())
    (outcome,) = translation.routes.values()
    (po,) = outcome.parents
    assert (po.accepted, po.accepted_reason) == (False, "UnsupportedValue")
    assert [v.path for v in po.violations] == ["spec.rules[0].matches[0].path.value"]
    assert [r.name for r in translation.proxies["shop/inside"].outbound[0].routes] == ["web.shop/default"]


def test_two_parent_refs_to_the_same_service_attach_its_rules_once() -> None:
    doc = yaml.safe_load(route("twice", "shop", [{"backendRefs": [{"name": "a", "port": 80}]}]))
    doc["spec"]["parentRefs"].append({"group": "", "kind": "Service", "name": "web", "port": 80})
    assert routes_of("---\n" + yaml.safe_dump(doc), "shop/inside") == [("HTTPRoute/shop/twice/rule-0", "a.shop|80")]
