"""One bad object holds back nothing else (local mode, real Envoy): an invalid file is reported by
``meshctl status`` (exit 1) while edits of other files reach every proxy, and a fresh start with a bad file serves
everything else."""

from __future__ import annotations

import pytest

from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh, eventually
from tests.envoy.mesh.test_live_update import VERSIONS, meshctl_status, served, split

pytestmark = pytest.mark.timeout(120)

BROKEN_YAML = "apiVersion: meshwork.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: other\n"


def bad_policy_for_other(extra: str = "") -> str:
    """A TrafficPolicy with a schema error and a cross-field error: both must be reported."""
    return f"""
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {{name: other}}
spec:
  targetRef: {{name: other}}
  rules:
    - backends: [{{subset: nowhere, weight: 100}}]
      timeouts: {{request: 5}}{extra}
"""


def _mesh(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend", instances=VERSIONS)
    mesh.service("other")
    mesh.client("caller", upstreams=["backend", "other"])


def test_with_an_invalid_file_present_an_edit_of_another_file_reaches_every_proxy(mesh: LocalMeshBuilder) -> None:
    _mesh(mesh)
    good = mesh.policy(split(100, 0), file="backend.yaml")
    with mesh.run() as m:
        m.write("other.yaml", bad_policy_for_other())
        policy = "TrafficPolicy/default/other"
        eventually(lambda: policy in m.policies(), timeout=10)
        accepted = m.policies()[policy]["accepted"]
        assert accepted["status"] == "False"
        # Every violation of the object: the schema error and the cross-field one.
        assert "spec.rules[0].timeouts.request" in accepted["message"]
        assert "spec.rules[0].backends[0].subset: unknown subset 'nowhere'" in accepted["message"]
        code, table, _ = meshctl_status(m)
        assert code == 1
        assert "other.yaml" in table and "timeouts.request" in table

        took = m.edit(good, split(0, 100))  # the valid edit of another file goes through
        assert served(m) == {"backend-v2"}
        assert took < 5
        code, table, doc = meshctl_status(m)
        assert code == 1  # still: the bad file is still there
        assert {r["state"] for r in doc["proxies"]} == {"SYNCED"}
        assert doc["policies"]["TrafficPolicy/default/backend"]["summary"] == "in force on 1/1 proxies"

        m.write("other.yaml", "")  # removing the bad content clears it
        eventually(lambda: meshctl_status(m)[0] == 0, timeout=10)


def test_a_fresh_start_with_a_bad_file_serves_everything_else(mesh: LocalMeshBuilder) -> None:
    _mesh(mesh)
    mesh.policy(split(0, 100), file="backend.yaml")
    mesh.policy(BROKEN_YAML, file="broken.yaml")
    mesh.policy(bad_policy_for_other(), file="other.yaml")
    with mesh.run() as m:  # returns once every proxy has ACKed its config
        assert served(m) == {"backend-v2"}
        assert m.get("caller", "other", "/").status == 200
        code, table, doc = meshctl_status(m)
        assert code == 1
        assert "broken.yaml" in table and "invalid YAML" in table
        assert doc["policies"]["TrafficPolicy/default/other"]["accepted"]["status"] == "False"
        assert {r["state"] for r in doc["proxies"]} == {"SYNCED"}


def test_with_a_bad_policy_present_a_valid_policy_edited_afterwards_reaches_every_proxy(
    mesh: LocalMeshBuilder,
) -> None:
    _mesh(mesh)
    mesh.policy(bad_policy_for_other(), file="other.yaml")
    backend = mesh.policy(split(100, 0), file="backend.yaml")
    with mesh.run() as m:
        assert served(m) == {"backend-v1"}
        m.edit(backend, split(0, 100))
        assert served(m) == {"backend-v2"}
        _check_names_the_bad_one(m)


def _check_names_the_bad_one(m: RunningMesh) -> None:
    code, table, _ = meshctl_status(m)
    assert code == 1
    assert "TrafficPolicy/default/other is not accepted" in table
