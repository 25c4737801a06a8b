"""The Envoy field rules validation applies are Envoy's own, extracted from its protos, and do not drift."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mesh_operator.validation.envoy import rules
from mesh_operator.validation.envoy_fields import ENVOY_FIELDS

ROOT = Path(__file__).parents[2]
UPB_PYTHON = ROOT / ".venv-upb" / "bin" / "python"


def test_every_mapped_api_field_has_the_rules_of_its_envoy_field() -> None:
    table = rules()
    for kind, mapping in ENVOY_FIELDS.items():
        for path, (message, field, _) in mapping.items():
            assert f"{message}.{field}" in table, f"{kind} {path}: run make envoy-rules"


def test_the_checked_in_rules_are_what_envoys_protos_say() -> None:
    if not UPB_PYTHON.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(".venv-upb is missing: make test installs it (make .venv-upb/.installed)")
        pytest.skip(".venv-upb (xds-protos) is not installed: make .venv-upb/.installed")
    out = subprocess.run(
        [str(UPB_PYTHON), str(ROOT / "scripts" / "envoy" / "extract_rules.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert json.loads(out) == rules(), "envoy_rules.json drifted from the protos: run make envoy-rules"
