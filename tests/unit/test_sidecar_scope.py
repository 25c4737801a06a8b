"""Sidecar scoping (translate/scope.py): which transparent sidecars receive which Services."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mesh_operator.loader import load_text
from mesh_operator.translate import MeshState, translate_mesh
from mesh_operator.translate.incremental import Translator
from mesh_operator.translate.scope import missing_services

INVENTORY = """\
apiVersion: meshwork.io/v1alpha1
kind: Inventory
metadata: {name: m}
spec:
  services:
    - name: api
      namespace: shop
      clusterIP: 10.96.0.10
      ports: [{port: 80}]
      instances:
        - {name: api-1, address: 10.244.0.4, port: 8080, serviceAccount: api, sidecar: {mode: Transparent}}
    - {name: db, namespace: shop, clusterIP: 10.96.0.11, ports: [{port: 5432, protocol: TCP}]}
    - {name: pay, namespace: billing, clusterIP: 10.96.1.10, ports: [{port: 80}]}
  clients:
    - {name: web-1, namespace: shop, serviceAccount: web, sidecar: {mode: Transparent}}
    - {name: job-1, namespace: shop, serviceAccount: job, sidecar: {mode: Transparent}}
    - name: explicit-1
      namespace: shop
      serviceAccount: web
      sidecar: {upstreams: [{service: pay.billing, localPort: 15001}]}
"""


def _state(*docs: str, mesh: dict[str, Any] | None = None) -> MeshState:
    parts = [INVENTORY, *docs]
    if mesh is not None:
        parts.append(yaml.safe_dump({"apiVersion": "meshwork.io/v1alpha1", "kind": "Mesh", **mesh}))
    loaded = load_text("\n---\n".join(parts), "mesh.yaml")
    assert not loaded.errors, loaded.problems
    return loaded.state()


def _reached(state: MeshState) -> dict[str, set[str]]:
    """node -> the service hosts its config has clusters for (inbound clusters left out)."""
    proxies = translate_mesh(state).proxies
    return {
        node: {c.service for c in cfg.clusters if not c.name.startswith("inbound|")} for node, cfg in proxies.items()
    }


def _access(target: str, namespace: str, rules: str, mode: str = "Enforce", name: str | None = None) -> str:
    return f"""\
apiVersion: meshwork.io/v1alpha1
kind: AccessPolicy
metadata: {{name: {name or target}, namespace: {namespace}}}
spec:
  targetRef: {{name: {target}}}
  mode: "{mode}"
  rules: {rules}
"""


ALL = {"api.shop", "db.shop", "pay.billing"}


def test_without_a_declaration_or_an_access_policy_every_transparent_sidecar_gets_every_service() -> None:
    got = _reached(_state())
    assert got["shop/web-1"] == got["shop/job-1"] == got["shop/api-1"] == ALL
    assert got["shop/explicit-1"] == {"pay.billing"}  # explicit upstreams: exactly what it declares


def test_a_service_whose_allow_rules_name_other_identities_is_not_sent_to_the_refused_sidecars() -> None:
    state = _state(_access("api", "shop", "[{action: Allow, from: [{serviceAccount: {namespace: shop, name: web}}]}]"))
    got = _reached(state)
    assert got["shop/web-1"] == ALL
    assert got["shop/job-1"] == ALL - {"api.shop"}
    assert got["shop/api-1"] == ALL - {"api.shop"}


@pytest.mark.parametrize(
    ("rules", "mode"),
    [
        ("[{action: Allow, from: [{serviceAccount: {namespace: shop, name: web}}]}]", "Shadow"),
        ("[{action: Allow, from: [{serviceAccount: {namespace: shop, name: web}}]}]", "Off"),
        ('[{action: Allow, from: [{requestPrincipals: ["https://idp.example/*"]}]}]', "Enforce"),
        ("[{action: Deny, from: [{namespace: shop}], to: [{methods: [DELETE]}]}]", "Enforce"),
        ("[{action: Deny, from: [{serviceAccount: {namespace: shop, name: job}}]}]", "Enforce"),
        ('[{action: Deny, from: [{requestPrincipals: ["https://idp.example/*"]}]}]', "Enforce"),
        ("[{action: Allow}]", "Enforce"),
        ("[{action: Allow, from: [{namespace: shop}]}]", "Enforce"),
    ],
    ids=[
        "shadow-allow",
        "off-allow",
        "jwt-allow",
        "deny-some-requests",
        "deny-every-request",
        "deny-jwt",
        "allow-any",
        "allow-namespace",
    ],
)
def test_a_policy_that_lets_the_caller_reach_the_service_on_some_request_never_hides_it(rules: str, mode: str) -> None:
    got = _reached(_state(_access("pay", "billing", rules, mode)))
    assert got["shop/job-1"] == ALL


def test_a_deny_never_hides_a_service_so_the_blocked_caller_still_gets_the_destinations_403() -> None:
    state = _state(
        _access("pay", "billing", "[{action: Allow, from: [{namespace: shop}]}]", name="allow"),
        _access("pay", "billing", "[{action: Deny, from: [{serviceAccount: {namespace: shop, name: job}}]}]"),
    )
    got = _reached(state)
    assert "pay.billing" in got["shop/job-1"]
    assert got["shop/web-1"] == ALL


def test_an_egress_declaration_narrows_its_namespace_and_a_service_account_entry_wins_over_it() -> None:
    mesh = {
        "metadata": {"name": "default"},
        "spec": {
            "sidecarEgress": [
                {"namespace": "shop", "services": ["billing/*"]},
                {"namespace": "shop", "serviceAccount": "job", "services": ["shop/db", "shop/api"]},
            ]
        },
    }
    got = _reached(_state(mesh=mesh))
    assert got["shop/web-1"] == {"pay.billing"}
    assert got["shop/api-1"] == {"pay.billing"}
    assert got["shop/job-1"] == {"db.shop", "api.shop"}
    assert got["shop/explicit-1"] == {"pay.billing"}


def test_a_declared_service_the_callers_identity_is_refused_is_still_left_out() -> None:
    mesh = {
        "metadata": {"name": "default"},
        "spec": {"sidecarEgress": [{"namespace": "shop", "services": ["shop/api"]}]},
    }
    state = _state(
        _access("api", "shop", "[{action: Allow, from: [{serviceAccount: {namespace: shop, name: web}}]}]"), mesh=mesh
    )
    got = _reached(state)
    assert got["shop/web-1"] == {"api.shop"}
    assert got["shop/job-1"] == set()


def test_a_declared_service_that_does_not_exist_is_reported_with_its_field_path_and_sent_once_it_exists() -> None:
    mesh = {
        "metadata": {"name": "default"},
        "spec": {"sidecarEgress": [{"namespace": "shop", "services": ["shop/api", "shop/cache", "ghost/*"]}]},
    }
    state = _state(mesh=mesh)
    assert [(v.path, v.severity) for v in missing_services(state)] == [
        ("spec.sidecarEgress[0].services[1]", "warning"),
        ("spec.sidecarEgress[0].services[2]", "warning"),
    ]
    assert "shop/cache does not exist" in missing_services(state)[0].message
    assert _reached(state)["shop/web-1"] == {"api.shop"}
    cache = "    - {name: cache, namespace: shop, clusterIP: 10.96.0.12, ports: [{port: 6379, protocol: TCP}]}\n"
    grown = load_text(
        INVENTORY.replace("  clients:\n", cache + "  clients:\n")
        + "\n---\n"
        + yaml.safe_dump({"apiVersion": "meshwork.io/v1alpha1", "kind": "Mesh", **mesh}),
        "mesh.yaml",
    ).state()
    assert [v.path for v in missing_services(grown)] == ["spec.sidecarEgress[0].services[2]"]
    assert _reached(grown)["shop/web-1"] == {"api.shop", "cache.shop"}


@pytest.mark.parametrize(
    ("egress", "path", "text"),
    [
        ([{"namespace": "shop", "services": ["api"]}], "spec.sidecarEgress[0].services[0]", "pattern"),
        ([{"namespace": "shop", "services": []}], "spec.sidecarEgress[0].services", "at least 1"),
        (
            [{"namespace": "shop", "services": ["a/b"]}, {"namespace": "shop", "services": ["a/c"]}],
            "spec.sidecarEgress[1]",
            "already selected by spec.sidecarEgress[0]",
        ),
    ],
    ids=["no-namespace", "empty", "twice"],
)
def test_a_bad_egress_declaration_is_refused_with_its_field_path(egress: list[Any], path: str, text: str) -> None:
    doc = yaml.safe_dump(
        {
            "apiVersion": "meshwork.io/v1alpha1",
            "kind": "Mesh",
            "metadata": {"name": "default"},
            "spec": {"sidecarEgress": egress},
        }
    )
    loaded = load_text(doc, "mesh.yaml")
    assert loaded.errors, loaded.problems
    assert any(path in str(p) and text in str(p) for p in loaded.problems), [str(p) for p in loaded.problems]


def test_the_incremental_translator_scopes_exactly_as_a_full_translation_when_an_access_policy_comes_and_goes() -> None:
    base = _state()
    policy = _state(_access("api", "shop", "[{action: Allow, from: [{serviceAccount: {namespace: shop, name: web}}]}]"))
    t = Translator()
    for state in (base, policy, base):
        assert t.translate(state).proxies == translate_mesh(state).proxies
    assert t.last_path == "incremental"
