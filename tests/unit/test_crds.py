"""The checked-in CRDs are what the models generate, and they are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_operator.crdgen import render_all

CRD_DIR = Path(__file__).parents[2] / "crds"


def test_the_checked_in_crds_match_the_models() -> None:
    expected = render_all()
    on_disk = {p.name: p.read_text() for p in CRD_DIR.glob("*.yaml")}
    stale = sorted(name for name in expected if on_disk.get(name) != expected[name])
    extra = sorted(set(on_disk) - set(expected))
    assert not stale and not extra, (
        f"crds/ drifted from the models (stale: {stale}, unexpected: {extra}); "
        "run `.venv/bin/python -m mesh_operator.crdgen crds`"
    )


def _walk(node: Any, path: str = "") -> list[str]:
    problems: list[str] = []
    if isinstance(node, dict):
        if "$ref" in node or ("anyOf" in node and any(o.get("type") == "null" for o in node["anyOf"])):
            problems.append(f"{path}: $ref or nullable anyOf")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: additionalProperties beside properties")
        if "title" in node and isinstance(node["title"], str):
            problems.append(f"{path}: title")
        container = "properties" in node or "items" in node or "additionalProperties" in node
        if container and "type" not in node:
            problems.append(f"{path}: no type")
        for k, v in node.items():
            if k != "x-kubernetes-validations":
                problems.extend(_walk(v, f"{path}.{k}"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            problems.extend(_walk(v, f"{path}[{i}]"))
    return problems


@pytest.mark.parametrize("name", sorted(render_all()))
def test_every_crd_schema_is_structural(name: str) -> None:
    crd = yaml.safe_load(render_all()[name])
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk(schema) == []


def test_trafficpolicy_printer_columns_show_target_and_acceptance() -> None:
    crd = yaml.safe_load(render_all()["meshwork.io_trafficpolicies.yaml"])
    columns = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns[:2] == ["Target", "Accepted"]
