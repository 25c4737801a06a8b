"""The validation webhook, registered with a real kube-apiserver: invalid policies are refused at create time
with every violation's field path, including mistakes the CRD's schema and CEL rules cannot see."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from mesh_operator.api import CRD_KINDS
from mesh_operator.testing.kubemesh import PLURALS, KubeMesh, OperatorProcess
from tests.k8s.operator_support import kube_mesh

__all__ = ["kube_mesh"]

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parents[1] / "validation" / "invalid.yaml").read_text())
#: namespaced policy cases (Mesh is cluster-scoped and shared by the session: its cases stay in the unit table)
INVALID = [c for c in CASES if c["errors"] and c["doc"].get("kind") in set(CRD_KINDS) - {"Mesh"}]
WEBHOOK = "validate.meshwork.io"


@pytest.fixture
def webhook(kube_mesh: KubeMesh, k8s_api_client: client.ApiClient) -> Iterator[tuple[KubeMesh, OperatorProcess]]:
    """The operator serving /validate, registered for this test's namespace only (failurePolicy Fail)."""
    op = kube_mesh.start_operator(webhook=True)
    assert op.webhook_port is not None
    bundle = base64.b64encode(kube_mesh.certs.bundle.to_pem()).decode()
    name = f"meshwork-{kube_mesh.namespace}"
    body = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": WEBHOOK,
                "clientConfig": {"url": f"https://127.0.0.1:{op.webhook_port}/validate", "caBundle": bundle},
                "rules": [
                    {
                        "apiGroups": ["meshwork.io"],
                        "apiVersions": ["v1alpha1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": list(PLURALS.values()),
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": kube_mesh.namespace}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
            }
        ],
    }
    admission: Any = client.AdmissionregistrationV1Api(k8s_api_client)
    admission.create_validating_webhook_configuration(body)
    try:
        yield kube_mesh, op
    finally:
        admission.delete_validating_webhook_configuration(name)


def _create(mesh: KubeMesh, doc: dict[str, Any]) -> str | None:
    """Create the policy; the apiserver's refusal message, or None when it was stored."""
    doc = json.loads(json.dumps(doc))
    doc.setdefault("apiVersion", "meshwork.io/v1alpha1")
    meta = doc.get("metadata", {})
    doc["metadata"] = {**meta, "name": meta.get("name") or f"case-{uuid.uuid4().hex[:6]}", "namespace": mesh.namespace}
    try:
        # Strict field validation, as kubectl asks for by default: unknown fields are errors, not pruned.
        mesh.custom.create_namespaced_custom_object(
            "meshwork.io", "v1alpha1", mesh.namespace, PLURALS[doc["kind"]], doc, field_validation="Strict"
        )
    except client.ApiException as e:
        return str(json.loads(e.body).get("message", e.body))
    return None


def test_every_invalid_policy_of_the_table_is_refused_at_create_time_with_its_field_paths(
    webhook: tuple[KubeMesh, OperatorProcess],
) -> None:
    mesh, op = webhook
    assert len(INVALID) >= 15
    by_webhook = []
    for case in INVALID:
        message = _create(mesh, case["doc"])
        assert message is not None, f"{case['case']}: stored, not refused"
        if f'admission webhook "{WEBHOOK}" denied the request' in message:
            by_webhook.append(case["case"])
            for expected in case["errors"]:
                assert expected in message, (case["case"], message)
        else:
            # Refused by the CRD's own schema or CEL rules, before any webhook (which stop at their first finding):
            # the path of one of the case's violations is in the message.
            leaves = [e.split(":", 1)[0].rsplit(".", 1)[-1].split("[", 1)[0] for e in case["errors"]]
            assert any(leaf in message for leaf in leaves), (case["case"], message)
    # Mistakes beyond a CRD schema (RE2 validity and program size, weights summing to 100, unreachable or
    # conflicting rules, ...) are caught by the webhook only.
    assert len(by_webhook) >= 5, by_webhook
    assert any("regular expression" in c or "RE2" in c or "regex" in c for c in by_webhook), by_webhook
    assert op.admin("/debug/kubez")["kopf_alive"]


def test_a_valid_policy_passes_the_webhook_and_a_missing_target_is_not_a_refusal(
    webhook: tuple[KubeMesh, OperatorProcess],
) -> None:
    mesh, _ = webhook
    doc = {"kind": "TrafficPolicy", "spec": {"targetRef": {"name": "no-such-service"}, "timeouts": {"request": "2s"}}}
    assert _create(mesh, doc) is None


def test_an_update_that_breaks_a_policy_is_refused_and_the_stored_policy_is_unchanged(
    webhook: tuple[KubeMesh, OperatorProcess],
) -> None:
    mesh, _ = webhook
    stored = mesh.apply(
        {"apiVersion": "meshwork.io/v1alpha1", "kind": "TrafficPolicy", "metadata": {"name": "tp"},
         "spec": {"targetRef": {"name": "backend"}}}
    )  # fmt: skip
    bad = {**stored, "spec": {"targetRef": {"name": "backend"}, "rules": [{"matches": [{"path": {
        "type": "RegularExpression", "value": "/api/(v1"}}]}]}}  # fmt: skip
    with pytest.raises(client.ApiException) as refused:
        mesh.custom.replace_namespaced_custom_object("meshwork.io", "v1alpha1", mesh.namespace, "trafficpolicies",
                                                     "tp", bad)  # fmt: skip
    assert "spec.rules[0].matches[0].path.value: not a valid RE2 regular expression" in refused.value.body
    assert mesh.get_policy("TrafficPolicy", "tp")["metadata"]["generation"] == stored["metadata"]["generation"]
