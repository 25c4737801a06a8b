"""The validation table: YAML in, every violation out, each with its field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_operator.validation import errors, validate_document, warnings

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parents[1] / "validation" / "invalid.yaml").read_text())


def _document(case: dict[str, Any]) -> dict[str, Any]:
    doc = {"apiVersion": "meshwork.io/v1alpha1", **case["doc"]}
    doc.setdefault("metadata", {"name": "case", "namespace": "default"})
    return doc


def _matches(found: list[str], expected: list[str]) -> bool:
    return len(found) == len(expected) and all(any(e in f for f in found) for e in expected)


def test_the_table_has_at_least_25_distinct_invalid_cases() -> None:
    invalid = [c for c in CASES if c["errors"]]
    assert len(invalid) >= 25
    assert len({c["case"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_each_invalid_document_is_reported_with_its_field_path(case: dict[str, Any]) -> None:
    checked = validate_document(_document(case))
    found_errors = [str(v) for v in errors(checked.violations)]
    found_warnings = [str(v).removeprefix("warning: ") for v in warnings(checked.violations)]
    assert _matches(found_errors, case["errors"]), found_errors
    assert _matches(found_warnings, case.get("warnings", [])), found_warnings
    assert checked.ok is (not case["errors"])
