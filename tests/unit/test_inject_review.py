"""The admission handler at its edges: what it answers for requests that are not a pod to inject."""

from __future__ import annotations

import base64
import json

import pytest

from mesh_operator.inject import InjectionSettings, review
from mesh_operator.inject.patch import diff, pointer

SETTINGS = InjectionSettings()
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"generateName": "web-", "annotations": {"meshwork.io/inject": "true"}},
    "spec": {"containers": [{"name": "app", "image": "localhost/web:1"}]},
}


def request(**overrides: object) -> dict[str, object]:
    req: dict[str, object] = {
        "uid": "abc",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE",
        "namespace": "shop",
        "object": POD,
    }
    req.update(overrides)
    return req


def test_a_pod_without_a_namespace_in_its_metadata_takes_the_requests_namespace() -> None:
    resp = review(request(namespace="kube-system"), SETTINGS)
    assert resp["allowed"] is True
    assert "patch" not in resp
    assert "kube-system is never injected" in resp["status"]["message"]


def test_a_generate_name_pod_is_injected_and_the_patch_names_only_what_changed() -> None:
    resp = review(request(), SETTINGS)
    ops = json.loads(base64.b64decode(resp["patch"]))
    paths = sorted(op["path"] for op in ops)
    assert "/metadata/annotations/meshwork.io~1status" in paths
    assert "/spec/initContainers" in paths
    assert "/spec/volumes" in paths
    assert not any(p.startswith("/metadata/generateName") for p in paths)


@pytest.mark.parametrize("operation", ["UPDATE", "DELETE", "CONNECT"])
def test_only_creations_are_injected(operation: str) -> None:
    resp = review(request(operation=operation), SETTINGS)
    assert resp == {"uid": "abc", "allowed": True, "status": {"message": resp["status"]["message"]}}
    assert "only pod creations" in resp["status"]["message"]


def test_another_kind_is_let_through_untouched() -> None:
    resp = review(request(kind={"group": "apps", "version": "v1", "kind": "Deployment"}), SETTINGS)
    assert resp["allowed"] is True
    assert "patch" not in resp


def test_a_request_without_the_pod_is_refused_with_the_field_path() -> None:
    resp = review(request(object=None), SETTINGS)
    assert resp["allowed"] is False
    assert "request.object" in resp["status"]["message"]


@pytest.mark.parametrize(
    ("pod", "path"),
    [
        ({"metadata": "x", "spec": {}}, "metadata"),
        ({"metadata": {"annotations": {"meshwork.io/inject": True}}, "spec": {}}, "metadata.annotations"),
        ({"metadata": {"annotations": {"meshwork.io/inject": "yes"}}, "spec": {}}, "meshwork.io/inject"),
        ({"metadata": {"annotations": {"meshwork.io/inject": "true"}}, "spec": {"containers": []}}, "spec.containers"),
        (
            {
                "metadata": {"annotations": {"meshwork.io/inject": "true"}},
                "spec": {"containers": [{"name": "a"}], "volumes": {}},
            },
            "spec.volumes",
        ),
    ],
)
def test_a_malformed_pod_is_refused_naming_the_field(pod: dict[str, object], path: str) -> None:
    resp = review(request(object=pod), SETTINGS)
    assert resp["allowed"] is False
    assert resp["status"]["code"] == 400
    assert path in resp["status"]["message"]


def test_json_pointers_escape_slashes_and_tildes() -> None:
    assert pointer(["metadata", "annotations", "meshwork.io/x~y"]) == "/metadata/annotations/meshwork.io~1x~0y"


def test_a_list_that_changed_length_is_replaced_whole_and_equal_lists_are_left_alone() -> None:
    assert diff({"a": [1, 2]}, {"a": [0, 1, 2]}) == [{"op": "replace", "path": "/a", "value": [0, 1, 2]}]
    assert diff({"a": [1, {"b": 1}]}, {"a": [1, {"b": 2}]}) == [{"op": "replace", "path": "/a/1/b", "value": 2}]
    assert diff({"a": [1]}, {"a": [1]}) == []
