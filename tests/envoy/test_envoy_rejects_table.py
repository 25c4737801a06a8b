"""Inputs Envoy would refuse or the translator could not build (tests/validation/envoy_rejects.yaml).

Each case is proven three ways: validation refuses it with the field path; with validation switched off, the
pre-flight check (real Envoy, ``--mode validate``) or the translator still refuses it and pins it on the policy
(so the case is real, and the safety net works); with validation on, no proxy's config changes at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_operator.api import common
from mesh_operator.control.build import build
from mesh_operator.loader import load_text
from mesh_operator.translate import MeshState, PolicyKey, policies
from mesh_operator.translate.status import INVALID, REJECTED_BY_ENVOY, TRANSLATION_FAILED
from mesh_operator.validation import errors, validate_document
from tests.envoy.inventories import ONE_BACKEND
from xds_server.preflight import Preflight

pytestmark = pytest.mark.envoy

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parents[1] / "validation" / "envoy_rejects.yaml").read_text()
)


def _doc(case: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "meshwork.io/v1alpha1", "metadata": {"name": "case", "namespace": "default"}, **case["doc"]}


def _state(*docs: dict[str, Any]) -> MeshState:
    text = ONE_BACKEND + "".join("---\n" + yaml.safe_dump(d) for d in docs)
    return load_text(text, "case.yaml").state()


def _key(case: dict[str, Any]) -> PolicyKey:
    return PolicyKey(case["doc"]["kind"], "default", "case")


@pytest.fixture(scope="module")
def preflight() -> Preflight:
    return Preflight()


def test_the_table_has_at_least_30_cases() -> None:
    assert len(CASES) >= 30
    assert len({c["case"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_each_case_is_refused_with_its_field_path_and_reaches_no_proxy(
    case: dict[str, Any], preflight: Preflight
) -> None:
    found = [str(v) for v in errors(validate_document(_doc(case)).violations)]
    if case.get("stage") == "translate":
        assert found == []
    else:
        assert len(found) == len(case["errors"]) and all(any(e in f for f in found) for e in case["errors"]), found

    with_case = build(_state(_doc(case)), {}, {}, preflight)
    without = build(_state(), {}, {}, preflight)
    outcome = with_case.translation.outcomes[_key(case)]
    assert outcome.reason == INVALID
    messages = [str(v) for v in outcome.violations]
    assert all(any(e in m for m in messages) for e in case["errors"]), messages
    assert not with_case.failed
    versions = {n: s.version for n, s in with_case.snapshots.items()}
    assert versions == {n: s.version for n, s in without.snapshots.items()}


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_without_validation_envoy_or_the_translator_refuses_each_case_and_blames_the_policy(
    case: dict[str, Any], preflight: Preflight, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "MAX_DURATION_MS", 10**30)
    monkeypatch.setattr(policies, "validate_object", lambda obj: [])
    monkeypatch.setattr(policies, "_protocol_problem", lambda p, state: None)
    checked = validate_document(_doc(case))
    assert checked.obj is not None, checked.violations
    result = build(_state(_doc(case)), {}, {}, preflight)
    outcome = result.translation.outcomes[_key(case)]
    assert outcome.reason in (REJECTED_BY_ENVOY, TRANSLATION_FAILED), outcome
    assert not outcome.accepted
    assert not result.failed  # pinned on the policy, not on a proxy
    assert set(result.snapshots) == {"default/backend-1", "default/caller"}  # every proxy still gets config
