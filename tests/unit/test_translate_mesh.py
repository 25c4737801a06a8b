"""Stage one: API objects + inventory -> per-policy status + IR per proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_operator.loader import load_paths, load_text
from mesh_operator.translate import PolicyKey, translate_mesh

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "mesh"
CASES: list[dict[str, Any]] = yaml.safe_load((ROOT / "tests" / "validation" / "invalid.yaml").read_text())


def _mesh_with(*extra: str):  # type: ignore[no-untyped-def]
    loaded = load_paths([EXAMPLE])
    for i, text in enumerate(extra):
        load_text(text, f"extra-{i}", loaded)
    return translate_mesh(loaded.state())


def test_the_example_mesh_translates_with_every_policy_accepted() -> None:
    t = _mesh_with()
    assert {str(k) for k in t.outcomes} == {
        "TrafficPolicy/shop/backend",
        "RetryPolicy/shop/backend",
        "AccessPolicy/shop/backend",
        "AuthenticationPolicy/shop/backend",
    }
    assert all(o.accepted and o.reason == "Accepted" for o in t.outcomes.values()), t.outcomes
    assert set(t.proxies) == {
        "shop/frontend",
        "shop/backend-v1-a",
        "shop/backend-v1-b",
        "shop/backend-v2",
        "shop/loadgen",
        "shop/intruder",
    }


def test_translation_is_deterministic() -> None:
    assert _mesh_with().proxies == _mesh_with().proxies


def test_a_weighted_split_routes_to_subset_clusters_holding_only_matching_instances() -> None:
    proxy = _mesh_with().proxies["shop/frontend"]
    split = next(r for r in proxy.outbound[0].routes if r.name == "backend.shop/split")
    assert [(c.cluster, c.weight) for c in split.clusters] == [
        ("backend.shop|8080|v1", 80),
        ("backend.shop|8080|v2", 20),
    ]
    clusters = {c.name: c for c in proxy.clusters}
    assert [e.instance for e in clusters["backend.shop|8080|v2"].endpoints] == ["shop/backend-v2"]
    assert len(clusters["backend.shop|8080|v1"].endpoints) == 2
    assert clusters["backend.shop|8080"].tls is not None
    assert clusters["backend.shop|8080"].tls.peer_spiffe_ids == ("spiffe://example.org/ns/shop/sa/backend",)


def test_the_retry_policy_applies_to_routes_and_its_budget_to_clusters() -> None:
    proxy = _mesh_with().proxies["shop/frontend"]
    route = next(r for r in proxy.outbound[0].routes if r.name == "backend.shop/split")
    assert route.retry is not None and route.retry.attempts == 3
    assert route.retry.provenance is not None and route.retry.provenance.ref == "RetryPolicy/shop/backend@1"
    budget = proxy.clusters[0].circuit_breakers.retry_budget
    assert budget is not None and budget.percent == 25


def test_a_rate_limited_rule_is_enforced_on_the_destination_inbound_side() -> None:
    proxy = _mesh_with().proxies["shop/backend-v1-a"]
    (inbound,) = proxy.inbound
    assert [r.name for r in inbound.routes] == ["backend.shop/limited"]
    assert inbound.routes[0].rate_limit is not None and inbound.routes[0].rate_limit.max_tokens == 5


def test_deny_rules_come_before_allow_rules_and_a_deny_without_from_applies_to_everyone() -> None:
    (inbound,) = _mesh_with().proxies["shop/backend-v2"].inbound
    assert [p.action for p in inbound.rbac] == ["deny", "allow"]
    assert inbound.rbac[0].rules[0].principals[0].any is True


INVALID_POLICY = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: broken, namespace: shop}
spec:
  targetRef: {name: frontend}
  rules: [{backends: [{subset: nope, weight: 100}]}]
"""


def test_an_invalid_policy_is_not_accepted_and_the_rest_of_the_mesh_still_translates() -> None:
    good = _mesh_with()
    t = _mesh_with(INVALID_POLICY)
    outcome = t.outcomes[PolicyKey("TrafficPolicy", "shop", "broken")]
    assert not outcome.accepted and outcome.reason == "Invalid"
    assert "spec.rules[0].backends[0].subset: unknown subset 'nope'" in outcome.message
    assert t.proxies == good.proxies


def test_a_policy_for_a_missing_service_reports_target_not_found() -> None:
    t = _mesh_with(INVALID_POLICY.replace("frontend", "ghost").replace("nope", "x").replace("subset: x, ", ""))
    outcome = t.outcomes[PolicyKey("TrafficPolicy", "shop", "broken")]
    assert outcome.reason == "TargetNotFound" and "shop/ghost" in outcome.message


def test_the_older_of_two_conflicting_traffic_policies_wins() -> None:
    newer = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: also-backend, namespace: shop, creationTimestamp: "2026-11-02T00:00:00Z"}
spec: {targetRef: {name: backend}, timeouts: {request: 1s}}
"""
    older = newer.replace("also-backend", "first").replace("2026-11-02", "2026-11-01").replace("1s", "3s")
    t = _mesh_with(newer, older)
    assert t.outcomes[PolicyKey("TrafficPolicy", "shop", "first")].accepted
    loser = t.outcomes[PolicyKey("TrafficPolicy", "shop", "also-backend")]
    assert loser.reason == "Conflicted" and "first is older" in loser.message
    assert not t.outcomes[PolicyKey("TrafficPolicy", "shop", "backend")].accepted  # no timestamp: newest


def test_a_retry_policy_for_one_rule_beats_the_service_wide_one_on_that_rule_only() -> None:
    rule_retry = """
apiVersion: meshwork.io/v1alpha1
kind: RetryPolicy
metadata: {name: slow-only, namespace: shop}
spec:
  targetRef: {kind: TrafficPolicy, name: backend, sectionName: slow}
  attempts: 1
  retryOn: [gateway-error]
"""
    routes = {r.name: r for r in _mesh_with(rule_retry).proxies["shop/frontend"].outbound[0].routes}
    assert routes["backend.shop/slow"].retry.attempts == 1  # type: ignore[union-attr]
    assert routes["backend.shop/split"].retry.attempts == 3  # type: ignore[union-attr]


def test_a_retry_policy_naming_a_missing_rule_is_not_accepted() -> None:
    text = """
apiVersion: meshwork.io/v1alpha1
kind: RetryPolicy
metadata: {name: ghost-rule, namespace: shop}
spec: {targetRef: {kind: TrafficPolicy, name: backend, sectionName: nowhere}}
"""
    outcome = _mesh_with(text).outcomes[PolicyKey("RetryPolicy", "shop", "ghost-rule")]
    assert outcome.reason == "TargetNotFound" and "'nowhere'" in outcome.message


@pytest.mark.parametrize("case", [c for c in CASES if c["errors"]], ids=lambda c: c["case"])
def test_no_invalid_document_crashes_the_translator_or_changes_other_proxies(case: dict[str, Any]) -> None:
    doc = {"apiVersion": "meshwork.io/v1alpha1", "metadata": {"name": "bad", "namespace": "shop"}, **case["doc"]}
    good = _mesh_with()
    assert _mesh_with(yaml.safe_dump(doc)).proxies == good.proxies
