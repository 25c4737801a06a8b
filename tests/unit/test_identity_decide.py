"""The identity checks after the TokenReview: the pod named by the token must be the pod asking, as it is now."""

from __future__ import annotations

from typing import Any

import pytest

from mesh_operator.identity import PodIdentity, Refusal, check_pod, identity_from_review

REVIEW: dict[str, Any] = {
    "authenticated": True,
    "audiences": ["meshwork"],
    "user": {
        "username": "system:serviceaccount:shop:web",
        "extra": {
            "authentication.kubernetes.io/pod-name": ["web-0"],
            "authentication.kubernetes.io/pod-uid": ["u-1"],
        },
    },
}
WHO = PodIdentity("shop", "web", "web-0", "u-1")
POD: dict[str, Any] = {"metadata": {"name": "web-0", "uid": "u-1"}, "spec": {"serviceAccountName": "web"}}


def test_a_bound_service_account_token_names_the_pod_and_its_account() -> None:
    assert identity_from_review(REVIEW, "meshwork") == WHO
    assert WHO.spiffe_id("cluster.local") == "spiffe://cluster.local/ns/shop/sa/web"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"authenticated": False, "error": "token expired"}, "did not accept the token: token expired"),
        ({"audiences": ["other"]}, "not for audience 'meshwork'"),
        ({"user": {"username": "alice"}}, "alice is not a service account"),
        ({"user": {"username": "system:serviceaccount:shop:web"}}, "not bound to a pod"),
    ],
)
def test_a_review_that_does_not_vouch_for_a_pod_is_a_refusal(change: dict[str, Any], reason: str) -> None:
    result = identity_from_review({**REVIEW, **change}, "meshwork")
    assert isinstance(result, Refusal)
    assert reason in result.reason


def test_the_pod_as_it_is_now_passes() -> None:
    assert check_pod(WHO, POD, "shop", "web-0") is None


@pytest.mark.parametrize(
    ("pod", "claimed", "reason"),
    [
        (POD, ("shop", "web-1"), "belongs to pod shop/web-0, not shop/web-1"),
        (None, ("shop", "web-0"), "pod shop/web-0 does not exist"),
        ({**POD, "metadata": {"uid": "u-2"}}, ("shop", "web-0"), "UID differs"),
        (
            {**POD, "metadata": {"uid": "u-1", "deletionTimestamp": "2026-12-01T00:00:00Z"}},
            ("shop", "web-0"),
            "deleted",
        ),
        ({**POD, "spec": {"serviceAccountName": "admin"}}, ("shop", "web-0"), "runs as service account admin"),
        ({**POD, "spec": {}}, ("shop", "web-0"), "runs as service account default"),
        ({**POD, "status": {"phase": "Succeeded"}}, ("shop", "web-0"), "has terminated"),
    ],
)
def test_a_pod_that_is_not_the_token_s_pod_is_refused(
    pod: dict[str, Any] | None, claimed: tuple[str, str], reason: str
) -> None:
    result = check_pod(WHO, pod, *claimed)
    assert isinstance(result, Refusal)
    assert reason in result.reason
