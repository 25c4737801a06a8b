"""Meshwork's CRDs on a real kube-apiserver: they install, real policies pass, invalid ones fail in the apiserver."""

from __future__ import annotations

import copy
import json
import re
import uuid
from typing import Any, cast

import pytest
from kubernetes import client

from tests.k8s.helpers import (
    REJECTED,
    VALID,
    Crd,
    PolicyDoc,
    create_namespace,
    error_message,
    load_crds,
    policy_documents,
    wait_established,
)

GROUP = "meshwork.io"
VERSION = "v1alpha1"
EXPECTED_KINDS = {"Mesh", "TrafficPolicy", "RetryPolicy", "AccessPolicy"}

# Collected at import time from files only (no cluster needed), so each document is its own test.
_CRD_KINDS = set(load_crds())
POLICY_DOCS = list(policy_documents(_CRD_KINDS))
VALID_DOCS = [d for d in POLICY_DOCS if d.expected == VALID]
REJECTED_DOCS = [d for d in POLICY_DOCS if d.expected == REJECTED]

# A valid spec per kind; each invalid case below breaks one thing in a copy of it.
VALID_SPECS: dict[str, dict[str, Any]] = {
    "TrafficPolicy": {
        "targetRef": {"name": "reviews"},
        "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}],
        "rules": [
            {
                "name": "split",
                "matches": [{"path": {"type": "PathPrefix", "value": "/api"}, "method": "GET"}],
                "backends": [{"subset": "v1", "weight": 90}, {"subset": "v2", "weight": 10}],
                "timeouts": {"request": "5s"},
            }
        ],
        "loadBalancer": {"type": "RingHash", "hashOn": [{"header": "x-user"}]},
    },
    "RetryPolicy": {"targetRef": {"name": "reviews"}, "attempts": 3, "retryOn": ["5xx", "reset"]},
    "AccessPolicy": {
        "targetRef": {"name": "reviews"},
        "rules": [{"action": "Allow", "from": [{"serviceAccount": {"namespace": "shop", "name": "frontend"}}]}],
    },
    "Mesh": {"trustDomain": "example.org", "mtls": {"mode": "Strict"}},
}


def _body(kind: str, spec: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name or f"{kind.lower()}-{uuid.uuid4().hex[:6]}"},
        "spec": spec,
    }


def _create(api: client.ApiClient, crd: Crd, body: dict[str, Any], namespace: str, *, dry_run: bool) -> dict[str, Any]:
    """Create `body` (Strict field validation: an unknown field is an error, not silently pruned)."""
    objects = client.CustomObjectsApi(api)
    group, version = body["apiVersion"].split("/", 1)
    kwargs: dict[str, Any] = {"field_validation": "Strict"}
    if dry_run:
        kwargs["dry_run"] = "All"
    if crd.namespaced:
        result = objects.create_namespaced_custom_object(group, version, namespace, crd.plural, body, **kwargs)
    else:
        result = objects.create_cluster_custom_object(group, version, crd.plural, body, **kwargs)
    return cast(dict[str, Any], result)


def _set(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `spec` with the dotted `path` (list indexes as numbers) set to `value`, or removed for `_DELETE`."""
    spec = copy.deepcopy(spec)
    keys: list[str | int] = [int(k) if k.isdigit() else k for k in path.split(".")]
    node: Any = spec
    for key in keys[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return spec


_DELETE = object()


def test_every_crd_installs_and_becomes_established(
    k8s_api_client: client.ApiClient, meshwork_crds: dict[str, Crd]
) -> None:
    assert set(meshwork_crds) >= EXPECTED_KINDS, f"crds/ holds {sorted(meshwork_crds)}"
    for crd in meshwork_crds.values():
        assert (crd.group, crd.version) == (GROUP, VERSION), crd.path.name
        conditions = wait_established(k8s_api_client, crd.name)
        assert conditions.get("NamesAccepted") == "True", (crd.name, conditions)
        assert conditions.get("NonStructuralSchema") in (None, "False"), (crd.name, conditions)
    assert not meshwork_crds["Mesh"].namespaced
    assert all(meshwork_crds[k].namespaced for k in EXPECTED_KINDS - {"Mesh"})


def test_the_apiserver_serves_every_meshwork_kind_in_discovery(
    k8s_api_client: client.ApiClient, meshwork_crds: dict[str, Crd]
) -> None:
    resources = client.CustomObjectsApi(k8s_api_client).get_api_resources(GROUP, VERSION)
    served = {r.kind for r in resources.resources if "/" not in r.name}
    assert served >= EXPECTED_KINDS


def test_there_are_example_and_golden_policies_to_dry_run() -> None:
    assert VALID_DOCS, "no meshwork.io documents found in examples/**/*.yaml or tests/golden/cases/*/input.yaml"


@pytest.mark.parametrize("doc", VALID_DOCS, ids=[d.id for d in VALID_DOCS])
def test_every_example_and_golden_input_policy_passes_server_side_dry_run(
    k8s_api_client: client.ApiClient, meshwork_crds: dict[str, Crd], doc: PolicyDoc
) -> None:
    crd = meshwork_crds[doc.body["kind"]]
    namespace = _namespace_for(k8s_api_client, crd, doc)
    try:
        stored = _create(k8s_api_client, crd, copy.deepcopy(doc.body), namespace, dry_run=True)
    except client.ApiException as err:
        pytest.fail(f"{doc.id} rejected by the apiserver: {err.status} {error_message(err)}", pytrace=False)
    assert stored["metadata"]["name"] == doc.body["metadata"]["name"]
    # The stored spec keeps everything the document says (defaults may add fields, nothing is pruned).
    _assert_contains(stored.get("spec", {}), doc.body.get("spec", {}), "spec")


@pytest.mark.parametrize("doc", REJECTED_DOCS, ids=[d.id for d in REJECTED_DOCS])
def test_a_golden_input_our_models_refuse_is_refused_by_the_apiserver_too(
    k8s_api_client: client.ApiClient, meshwork_crds: dict[str, Crd], doc: PolicyDoc
) -> None:
    crd = meshwork_crds[doc.body["kind"]]
    namespace = _namespace_for(k8s_api_client, crd, doc)
    with pytest.raises(client.ApiException) as caught:
        _create(k8s_api_client, crd, copy.deepcopy(doc.body), namespace, dry_run=True)
    assert caught.value.status == 422, error_message(caught.value)
    message = error_message(caught.value)
    # Our problem text starts with the field path ("spec.rules[0].action: ..."); the apiserver names it too.
    paths = {problem.split(": ", 1)[0] for problem in doc.problems}
    assert any(f"{path}: " in message for path in paths), f"none of {sorted(paths)} named in: {message}"


def _namespace_for(api: client.ApiClient, crd: Crd, doc: PolicyDoc) -> str:
    namespace = str(doc.body.get("metadata", {}).get("namespace") or "meshwork-examples")
    if crd.namespaced:
        create_namespace(api, namespace)
    return namespace


def _assert_contains(actual: Any, expected: Any, path: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} dropped by the apiserver"
            _assert_contains(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), path
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _assert_contains(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


@pytest.mark.parametrize("kind", sorted(VALID_SPECS))
def test_the_valid_base_policy_of_each_kind_is_accepted(
    k8s_api_client: client.ApiClient, meshwork_crds: dict[str, Crd], namespace: str, kind: str
) -> None:
    # Guards the invalid table below: each invalid case differs from an accepted policy by one change.
    stored = _create(k8s_api_client, meshwork_crds[kind], _body(kind, VALID_SPECS[kind]), namespace, dry_run=True)
    _assert_contains(stored["spec"], VALID_SPECS[kind], "spec")


# (kind, dotted path to change in the valid spec, new value or _DELETE, field path named in the 422, words in it)
INVALID_CASES: list[tuple[str, str, Any, str, str]] = [
    ("TrafficPolicy", "targetRef", _DELETE, "spec.targetRef", "Required value"),
    ("TrafficPolicy", "targetRef.kind", "Deployment", "spec.targetRef.kind", "Unsupported value"),
    ("TrafficPolicy", "targetRef.name", "Reviews_V2", "spec.targetRef.name", "should match"),
    ("TrafficPolicy", "targetRef.kind", "TrafficPolicy", "spec.targetRef.kind", "Unsupported value"),
    ("TrafficPolicy", "rules.0.backends.1.subset", "v9", "spec", "every backend subset must be declared"),
    ("TrafficPolicy", "subsets.1.name", "v1", "spec", "subsets: names must be unique"),
    (
        "TrafficPolicy",
        "rules.0.matches.0.headers",
        [{"name": "x-user", "type": "Exact"}],
        "spec.rules[0].matches[0].headers[0]",
        "value is required unless type is Present",
    ),
    ("TrafficPolicy", "loadBalancer.type", "RoundRobin", "spec.loadBalancer", "hashOn needs type RingHash or Maglev"),
    (
        "TrafficPolicy",
        "rules.0.rateLimit",
        {"maxTokens": 5, "fillInterval": "10ms"},
        "spec.rules[0].rateLimit",
        "fillInterval must be at least 50ms",
    ),
    ("TrafficPolicy", "rules.0.backends.1.weight", 20, "spec.rules[0]", "weights must sum to 100"),
    ("TrafficPolicy", "rules.0.backends.0.weight", 150, "spec.rules[0].backends[0].weight", "less than or equal"),
    ("TrafficPolicy", "rules.0.backends.0.weight", "90%", "spec.rules[0].backends[0].weight", "integer"),
    ("TrafficPolicy", "rules.0.mirror", {"subset": "v2", "percent": 101}, "spec.rules[0].mirror.percent", "100"),
    ("TrafficPolicy", "rules.0.fault", {}, "spec.rules[0].fault", "set delay, abort or both"),
    ("TrafficPolicy", "rules.0.fault", {"abort": {"httpStatus": 99}}, "spec.rules[0].fault.abort.httpStatus", "200"),
    ("TrafficPolicy", "rules.0.matches.0.path.type", "Glob", "spec.rules[0].matches[0].path.type", "Unsupported"),
    ("TrafficPolicy", "rules.0.matches.0.method", "FETCH", "spec.rules[0].matches[0].method", "Unsupported value"),
    ("TrafficPolicy", "rules.0.timeouts.request", "5 seconds", "spec.rules[0].timeouts.request", "should match"),
    ("TrafficPolicy", "rules.0.redirect", {"scheme": "https"}, "spec.rules[0]", "redirect excludes backends"),
    ("TrafficPolicy", "loadBalancer.type", "Fastest", "spec.loadBalancer.type", "Unsupported value"),
    (
        "TrafficPolicy",
        "loadBalancer.hashOn.0",
        {"header": "x-user", "cookie": "session"},
        "spec.loadBalancer.hashOn[0]",
        "set exactly one of header, cookie, sourceIp",
    ),
    (
        "TrafficPolicy",
        "healthCheck",
        {"http": {"expectedStatuses": [{"start": 500, "end": 200}]}},
        "spec.healthCheck.http.expectedStatuses[0]",
        "start must not be after end",
    ),
    ("TrafficPolicy", "healthCheck", {"http": {}, "tcp": {}}, "spec.healthCheck", "set exactly one of http, tcp"),
    ("RetryPolicy", "attempts", 11, "spec.attempts", "less than or equal to 10"),
    ("RetryPolicy", "attempts", "three", "spec.attempts", "integer"),
    ("RetryPolicy", "retryOn.1", "sometimes", "spec.retryOn[1]", "Unsupported value"),
    ("RetryPolicy", "budget", {"percent": 120}, "spec.budget.percent", "less than or equal to 100"),
    ("RetryPolicy", "perTryTimeout", "soon", "spec.perTryTimeout", "should match"),
    ("RetryPolicy", "targetRef.kind", "TrafficPolicy", "spec", "targetRef.sectionName is required"),
    ("RetryPolicy", "retriableStatusCodes", [999], "spec.retriableStatusCodes[0]", "less than or equal to 599"),
    ("RetryPolicy", "retryOn", ["retriable-status-codes"], "spec", "list the codes to retry"),
    (
        "RetryPolicy",
        "backoff",
        {"baseInterval": "1s", "maxInterval": "100ms"},
        "spec.backoff",
        "maxInterval must not be less than baseInterval",
    ),
    ("AccessPolicy", "rules.0.to", [{"methods": ["FETCH"]}], "spec.rules[0].to[0].methods[0]", "Unsupported value"),
    ("AccessPolicy", "rules", _DELETE, "spec.rules", "Required value"),
    ("AccessPolicy", "rules", [], "spec.rules", "at least 1 items"),
    ("AccessPolicy", "mode", "Audit", "spec.mode", "Unsupported value"),
    ("AccessPolicy", "rules.0.action", "Maybe", "spec.rules[0].action", "Unsupported value"),
    (
        "AccessPolicy",
        "rules.0.from.0.namespace",
        "shop",
        "spec.rules[0].from[0]",
        "set exactly one of serviceAccount, namespace, spiffeId",
    ),
    (
        "AccessPolicy",
        "rules.0.from.0",
        {"spiffeId": {"exact": "http://example.org/ns/shop/sa/frontend"}},
        "spec.rules[0].from[0].spiffeId.exact",
        "should match",
    ),
    ("AccessPolicy", "rules.0.from.0.serviceAccount.name", _DELETE, "spec.rules[0].from[0].serviceAccount.name", ""),
    ("Mesh", "mtls.mode", "Off", "spec.mtls.mode", "Unsupported value"),
    ("Mesh", "trustDomain", "Example.ORG", "spec.trustDomain", "should match"),
    ("Mesh", "certificates", {"workloadTtl": "1 day"}, "spec.certificates.workloadTtl", "should match"),
    ("Mesh", "defaultRetryBudget", {"percent": -5}, "spec.defaultRetryBudget.percent", "greater than or equal to 0"),
    (
        "Mesh",
        "certificates",
        {"workloadTtl": "24h", "rootTtl": "1h"},
        "spec.certificates",
        "workloadTtl must be shorter than rootTtl",
    ),
]


@pytest.mark.parametrize(
    ("kind", "change", "value", "field", "words"),
    INVALID_CASES,
    ids=[
        f"{kind}-{change}={'<deleted>' if v is _DELETE else json.dumps(v)}" for kind, change, v, _, _ in INVALID_CASES
    ],
)
def test_an_invalid_policy_is_rejected_by_the_apiserver_with_a_message_naming_the_field(
    k8s_api_client: client.ApiClient,
    meshwork_crds: dict[str, Crd],
    namespace: str,
    kind: str,
    change: str,
    value: Any,
    field: str,
    words: str,
) -> None:
    body = _body(kind, _set(VALID_SPECS[kind], change, value))
    with pytest.raises(client.ApiException) as caught:
        _create(k8s_api_client, meshwork_crds[kind], body, namespace, dry_run=True)
    assert caught.value.status == 422, caught.value.body
    message = error_message(caught.value)
    # Field paths appear as "spec.rules[0].fault: Invalid value: ..." in the apiserver's message.
    assert re.search(rf"(^|[\s,\[]){re.escape(field)}: ", message), f"{field!r} not named in: {message}"
    assert words.lower() in message.lower(), message


def test_an_unknown_field_is_rejected_rather_than_silently_pruned(
    k8s_api_client: client.ApiClient, meshwork_crds: dict[str, Crd], namespace: str
) -> None:
    spec = _set(VALID_SPECS["TrafficPolicy"], "rules.0.retries", 3)
    with pytest.raises(client.ApiException) as caught:
        _create(k8s_api_client, meshwork_crds["TrafficPolicy"], _body("TrafficPolicy", spec), namespace, dry_run=True)
    assert caught.value.status in (400, 422), caught.value.body
    assert 'unknown field "spec.rules[0].retries"' in error_message(caught.value)


def _table(api: client.ApiClient, path: str) -> dict[str, Any]:
    """GET `path` asking for the server-side Table rendering (what `kubectl get` prints)."""
    method, url, headers, _, _ = api.param_serialize(
        "GET",
        path,
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(method, url, header_params=headers)
    data: bytes = response.response.data
    assert response.status == 200, data
    table: dict[str, Any] = json.loads(data)
    return table


@pytest.mark.parametrize("kind", sorted(EXPECTED_KINDS))
def test_a_table_request_shows_the_printer_columns_the_crd_declares(
    k8s_api_client: client.ApiClient, meshwork_crds: dict[str, Crd], namespace: str, kind: str
) -> None:
    crd = meshwork_crds[kind]
    declared = crd.printer_columns
    assert declared, f"{crd.path.name} declares no additionalPrinterColumns"
    name = f"{kind.lower()}-{uuid.uuid4().hex[:6]}"
    _create(k8s_api_client, crd, _body(kind, VALID_SPECS[kind], name), namespace, dry_run=False)
    objects = client.CustomObjectsApi(k8s_api_client)
    status = {"conditions": [{"type": "Accepted", "status": "True", "reason": "Valid", "message": "ok"}]}
    try:
        if crd.namespaced:
            objects.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, crd.plural, name, {"status": status}
            )
            path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{crd.plural}"
        else:
            objects.patch_cluster_custom_object_status(GROUP, VERSION, crd.plural, name, {"status": status})
            path = f"/apis/{GROUP}/{VERSION}/{crd.plural}"
        table = _table(k8s_api_client, path)
    finally:
        # The session's apiserver is shared (a bare apiserver never empties a deleted namespace): a policy left here,
        # whose target does not exist, would be a finding of every later cluster-wide `meshctl check`.
        if crd.namespaced:
            objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, crd.plural, name)
        else:
            objects.delete_cluster_custom_object(GROUP, VERSION, crd.plural, name)

    assert table["kind"] == "Table"
    columns = table["columnDefinitions"]
    assert [c["name"] for c in columns] == ["Name"] + [c["name"] for c in declared]
    for column, spec in zip(columns[1:], declared, strict=True):
        assert column["type"] == spec["type"], column
        assert column["priority"] == spec.get("priority", 0), column
    rows = {
        row["cells"][0]: dict(zip((c["name"] for c in columns), row["cells"], strict=True)) for row in table["rows"]
    }
    assert name in rows, rows
    row = rows[name]
    assert row["Accepted"] == "True"
    assert row["Reason"] == "Valid"
    if "Target" in row:
        assert row["Target"] == VALID_SPECS[kind]["targetRef"]["name"]
    if kind == "Mesh":
        assert row["Trust Domain"] == "example.org"
        assert row["mTLS"] == "Strict"
