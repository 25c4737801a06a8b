"""The admission server: /validate refuses every invalid policy with its field paths; bad input gets a clear
refusal at a bounded cost; the server is TLS with a certificate from the mesh CA; handlers mount by path."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from mesh_operator.api import CRD_KINDS
from mesh_operator.kube.admission import MAX_NODES, AdmissionServer, validate_review
from xds_server.ca.authority import create_root
from xds_server.ca.issuer import certificate_pem

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parents[1] / "validation" / "invalid.yaml").read_text())
INVALID = [c for c in CASES if c["errors"] and c["doc"].get("kind") in CRD_KINDS]


def review_request(obj: dict[str, Any], *, uid: str = "u-1", operation: str = "CREATE") -> dict[str, Any]:
    kind = obj.get("kind", "TrafficPolicy")
    return {
        "uid": uid,
        "kind": {"group": "meshwork.io", "version": "v1alpha1", "kind": kind},
        "operation": operation,
        "namespace": "shop",
        "name": obj.get("metadata", {}).get("name", "case"),
        "object": obj,
    }


def policy(kind: str = "TrafficPolicy", spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "meshwork.io/v1alpha1",
        "kind": kind,
        "metadata": {
            "name": "case",
            "namespace": "shop",
            "uid": "x",
            "managedFields": [{"manager": "kubectl"}],
            **meta,
        },
        "spec": spec if spec is not None else {"targetRef": {"name": "backend"}},
    }


def test_the_refusal_table_has_at_least_15_cases() -> None:
    assert len(INVALID) >= 15


@pytest.mark.parametrize("case", INVALID, ids=[c["case"] for c in INVALID])
def test_validate_refuses_each_invalid_policy_naming_every_violations_field_path(case: dict[str, Any]) -> None:
    obj = {"apiVersion": "meshwork.io/v1alpha1", "metadata": {"name": "case", "namespace": "shop"}, **case["doc"]}
    response = validate_review(review_request(obj))
    assert response["allowed"] is False
    message = response["status"]["message"]
    for expected in case["errors"]:
        assert expected in message, message
    assert response["status"]["code"] == 422


def test_a_valid_policy_is_allowed_and_status_or_server_fields_do_not_matter() -> None:
    obj = policy()
    obj["status"] = {"conditions": "junk"}
    assert validate_review(review_request(obj)) == {"allowed": True}
    assert validate_review(review_request(policy(), operation="DELETE")) == {"allowed": True}


def test_warnings_are_passed_to_kubectl_without_refusing() -> None:
    spec = {
        "targetRef": {"name": "backend"},
        "rules": [{}, {"matches": [{"path": {"type": "PathPrefix", "value": "/a"}}]}],
    }
    response = validate_review(review_request(policy(spec=spec)))
    assert response["allowed"] is True
    assert any("spec.rules[1]: unreachable" in w for w in response["warnings"])


def test_an_unexpected_kind_is_refused_with_what_was_sent() -> None:
    request = review_request({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
    request["kind"] = {"group": "", "version": "v1", "kind": "Pod"}
    response = validate_review(request)
    assert response["allowed"] is False
    assert "got core/Pod" in response["status"]["message"]


def test_a_policy_with_thousands_of_rules_is_refused_quickly_with_the_field_path() -> None:
    rules = [{"name": f"r{i}", "matches": [{"path": {"type": "PathPrefix", "value": f"/p{i}"}}]} for i in range(5000)]
    started = time.monotonic()
    response = validate_review(review_request(policy(spec={"targetRef": {"name": "backend"}, "rules": rules})))
    elapsed = time.monotonic() - started
    assert response["allowed"] is False
    assert "spec.rules: List should have at most 128 items" in response["status"]["message"]
    assert elapsed < 2.0  # a generous bound for a loaded 2-core machine; measured ~0.05 s


def test_an_object_with_too_many_values_is_refused_without_validating_it() -> None:
    rules = [{"name": f"r{i}", "matches": [{"path": {"type": "PathPrefix", "value": f"/p{i}"}}]} for i in range(20000)]
    started = time.monotonic()
    response = validate_review(review_request(policy(spec={"targetRef": {"name": "backend"}, "rules": rules})))
    elapsed = time.monotonic() - started
    assert response["allowed"] is False
    assert f"more than {MAX_NODES} JSON values" in response["status"]["message"]
    assert response["status"]["code"] == 413
    assert elapsed < 2.0


def test_a_policy_just_over_the_rule_limit_is_refused_with_the_field_path() -> None:
    rules = [{"name": f"r{i}"} for i in range(129)]
    response = validate_review(review_request(policy(spec={"targetRef": {"name": "backend"}, "rules": rules})))
    assert response["allowed"] is False
    assert "spec.rules" in response["status"]["message"]


# ------------------------------------------------------------------------------------------------ the server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[AdmissionServer]:
    issuer = create_root("test.local")
    calls: list[dict[str, Any]] = []

    def echo(request: dict[str, Any]) -> dict[str, Any]:
        calls.append(request)
        return {"allowed": True, "patchType": "JSONPatch", "patch": ""}

    def broken(request: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    srv = AdmissionServer(
        issuer, {"/validate": validate_review, "/inject": echo, "/broken": broken}, names=("webhook.test.svc",),
        max_body=64 * 1024,
    )  # fmt: skip
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def client_ssl(srv: AdmissionServer) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=srv.ca_bundle().decode())
    ctx.check_hostname = False  # 127.0.0.1 is in the SANs; the DNS name is checked below
    return ctx


async def post(srv: AdmissionServer, path: str, body: bytes | dict[str, Any]) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"https://127.0.0.1:{srv.port}{path}", data=data, ssl=client_ssl(srv)) as resp,
    ):
        return resp.status, await resp.json()


def review(request: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


async def test_the_server_answers_over_tls_with_a_certificate_from_the_mesh_ca(server: AdmissionServer) -> None:
    status, body = await post(server, "/validate", review(review_request(policy())))
    assert status == 200
    assert body["kind"] == "AdmissionReview"
    assert body["response"] == {"allowed": True, "uid": "u-1"}
    # The certificate names the webhook Service and chains to the mesh's root.
    ctx = ssl.create_default_context(cadata=server.ca_bundle().decode())
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"https://127.0.0.1:{server.port}/validate",
            data=b"{}",
            ssl=ctx,
            server_hostname="webhook.test.svc",
        ) as resp,
    ):
        assert resp.status == 400


async def test_an_invalid_policy_is_refused_with_the_field_path_in_the_review(server: AdmissionServer) -> None:
    spec = {"targetRef": {"name": "backend"}, "rules": [{"timeouts": {"request": "5"}}]}
    status, body = await post(server, "/validate", review(review_request(policy(spec=spec), uid="abc")))
    assert status == 200
    assert body["response"]["uid"] == "abc"
    assert body["response"]["allowed"] is False
    assert "spec.rules[0].timeouts.request: invalid duration '5'" in body["response"]["status"]["message"]


async def test_other_handlers_mount_by_path_and_get_the_request(server: AdmissionServer) -> None:
    status, body = await post(server, "/inject", review(review_request(policy(), uid="p-1")))
    assert status == 200
    assert body["response"]["uid"] == "p-1"
    assert body["response"]["allowed"] is True


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "expected kind AdmissionReview"),
        (json.dumps({"kind": "AdmissionReview"}).encode(), "request.uid is missing"),
        (json.dumps({"kind": "AdmissionReview", "request": {"uid": 5}}).encode(), "request.uid is missing"),
        (b"\xff\xfe\x00", "not JSON"),
    ],
)
async def test_malformed_admission_reviews_get_a_clear_400(
    server: AdmissionServer, payload: bytes, expected: str
) -> None:
    status, body = await post(server, "/validate", payload)
    assert status == 400
    assert expected in body["error"]


async def test_an_oversized_review_is_refused_before_it_is_read_whole(server: AdmissionServer) -> None:
    status, body = await post(server, "/validate", b"x" * (server.max_body + 1))
    assert status == 413
    assert "bytes refused" in body["error"]
    status, _ = await post(server, "/validate", review(review_request(policy())))
    assert status == 200  # and the server goes on serving


async def test_a_handler_that_raises_is_answered_with_a_refusal_and_the_server_survives(
    server: AdmissionServer,
) -> None:
    status, body = await post(server, "/broken", review(review_request(policy(), uid="b-1")))
    assert status == 200
    assert body["response"]["allowed"] is False
    assert "RuntimeError: boom" in body["response"]["status"]["message"]
    status, _ = await post(server, "/validate", review(review_request(policy())))
    assert status == 200


async def test_the_serving_certificate_is_reissued_when_due(server: AdmissionServer) -> None:
    first = server.serial
    assert server.renew_at is not None
    server._load_cert()  # what the renewal loop does at half life
    assert server.serial != first
    status, _ = await post(server, "/validate", review(review_request(policy())))
    assert status == 200


def test_the_ca_bundle_is_the_mesh_root() -> None:
    issuer = create_root("test.local")
    srv = AdmissionServer(issuer, {})
    assert srv.ca_bundle() == certificate_pem(issuer.root)
