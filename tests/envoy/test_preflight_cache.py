"""The pre-flight check remembers what real Envoy accepted (by content hash) and validates a proxy from the bytes it
will receive: a resource that changes under the same name is validated again, and an invalid one is still refused,
pinned on the policy that produced it, while its last accepted version stays in force. Runs the control plane's own
build with the incremental translator, as the operator does, and real Envoy (``--mode validate``)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mesh_operator.api import common
from mesh_operator.control.build import Incremental, build
from mesh_operator.loader import load_text
from mesh_operator.translate import MeshState, PolicyKey, policies
from mesh_operator.translate.status import REJECTED_BY_ENVOY
from tests.envoy.inventories import ONE_BACKEND
from xds_server.preflight import Preflight
from xds_server.snapshot import CLUSTER, ROUTE

pytestmark = pytest.mark.envoy

KEY = PolicyKey("TrafficPolicy", "default", "tp")


def _state(generation: int, spec: dict[str, Any]) -> MeshState:
    doc = {
        "apiVersion": "meshwork.io/v1alpha1",
        "kind": "TrafficPolicy",
        "metadata": {"name": "tp", "namespace": "default", "generation": generation},
        "spec": {"targetRef": {"name": "backend"}, **spec},
    }
    return load_text(ONE_BACKEND + "---\n" + yaml.safe_dump(doc), "tp.yaml").state()


@pytest.fixture
def no_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own validation off: only the pre-flight check stands between a bad policy and the proxies."""
    monkeypatch.setattr(common, "MAX_DURATION_MS", 10**30)
    monkeypatch.setattr(policies, "validate_object", lambda obj: [])


@pytest.mark.parametrize(
    ("kind", "bad"),
    [
        (ROUTE, {"rules": [{"requestHeaders": {"set": [{"name": "x-a", "value": "a\r\nb"}]}}]}),
        (CLUSTER, {"timeouts": {"connect": "0s"}}),
    ],
    ids=["route configuration", "cluster"],
)
@pytest.mark.parametrize("workers", [2, 1], ids=["each proxy alone from its bytes", "proxies merged as JSON"])
def test_a_changed_resource_of_the_same_name_is_validated_again_and_refused_with_its_policy_named(
    kind: str, bad: dict[str, Any], workers: int, no_validation: None
) -> None:
    preflight = Preflight(workers=workers)
    inc = Incremental()
    good = build(_state(1, {"timeouts": {"request": "5s"}}), {}, {}, preflight, inc)
    assert good.translation.outcomes[KEY].accepted and not good.failed
    runs = preflight.stats.envoy_runs
    assert runs >= 1
    # two proxies: with two workers each gets its own run on its binary bootstrap; with one, one merged run
    assert preflight.stats.binary_runs == (runs if workers == 2 else 0)
    names = set(good.snapshots["default/caller"].resources[kind])

    # The same state again: every resource is known-good, Envoy is not asked.
    again = build(_state(1, {"timeouts": {"request": "5s"}}), good.translation.in_force, good.rejected, preflight, inc)
    assert preflight.stats.envoy_runs == runs
    assert {n: s.version for n, s in again.snapshots.items()} == {n: s.version for n, s in good.snapshots.items()}

    # A new generation whose resources keep their names but not their bytes: validated again, and refused.
    result = build(_state(2, bad), good.translation.in_force, good.rejected, preflight, inc)
    assert preflight.stats.envoy_runs > runs
    outcome = result.translation.outcomes[KEY]
    assert outcome.reason == REJECTED_BY_ENVOY and not outcome.accepted
    message = " ".join(str(v) for v in outcome.violations)
    assert "Envoy refuses the config this produces (pre-flight check on default/" in message, message
    assert not result.failed  # pinned on the policy, not on a proxy
    # Its last accepted version stays in force: the proxies keep exactly the config of generation 1.
    assert {n: s.version for n, s in result.snapshots.items()} == {n: s.version for n, s in good.snapshots.items()}
    assert set(result.snapshots["default/caller"].resources[kind]) == names
