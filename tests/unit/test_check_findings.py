"""``meshctl check -f``: every finding code MW0001… has a mesh that triggers it (and the example and golden meshes
trigger none); exit 1 on an error finding, 0 on warnings only, 2 when the files cannot be read; ``-o json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mesh_operator.analysis.findings import CODES, analyze
from mesh_operator.loader import load_paths, load_text
from meshctl.cli import main

ROOT = Path(__file__).resolve().parents[2]

INVENTORY = """
apiVersion: meshwork.io/v1alpha1
kind: Inventory
metadata: {name: t}
spec:
  services:
    - name: front
      ports: [{port: 80}]
      instances: [{name: front-1, port: 18001, serviceAccount: front,
                   sidecar: {inboundPort: 15001, upstreams: [{service: mid, localPort: 16001}]}}]
    - name: mid
      ports: [{port: 80}]
      instances: [{name: mid-1, port: 18002, serviceAccount: mid,
                   sidecar: {inboundPort: 15002, upstreams: [{service: back, localPort: 16002}]}}]
    - name: back
      ports: [{port: 80}]
      instances: [{name: back-1, port: 18003, serviceAccount: back, sidecar: {inboundPort: 15003}}]
---
"""

TRIGGERS = {
    "MW0001": """
apiVersion: meshwork.io/v1alpha1
kind: RetryPolicy
metadata: {name: ghost}
spec: {targetRef: {name: nowhere}, attempts: 2, retryOn: [5xx]}
""",
    "MW0002": """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: mid}
spec:
  targetRef: {name: mid}
  rules:
    - name: everything-api
      matches: [{path: {type: PathPrefix, value: /api}}]
      timeouts: {request: 1s}
    - name: api-v2
      matches: [{path: {type: PathPrefix, value: /api/v2}}]
      timeouts: {request: 5s}
""",
    "MW0003": """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: mid}
spec:
  targetRef: {name: mid}
  timeouts: {request: 1s}
---
apiVersion: meshwork.io/v1alpha1
kind: RetryPolicy
metadata: {name: mid}
spec: {targetRef: {name: mid}, attempts: 3, retryOn: [5xx], perTryTimeout: 500ms}
""",
    "MW0004": """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: first, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {targetRef: {name: back}, timeouts: {request: 2s}}
---
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: second, creationTimestamp: "2026-02-01T00:00:00Z"}
spec: {targetRef: {name: back}, timeouts: {request: 3s}}
""",
    "MW0005": """
apiVersion: meshwork.io/v1alpha1
kind: AccessPolicy
metadata: {name: back}
spec:
  targetRef: {name: back}
  rules:
    - name: typo
      action: Allow
      from: [{serviceAccount: {namespace: default, name: mdi}}]
""",
    "MW0006": """
apiVersion: meshwork.io/v1alpha1
kind: Mesh
metadata: {name: default}
spec:
  sidecarEgress: [{namespace: default, services: [default/mid, default/bakc]}]
""",
}

CHAIN = """
apiVersion: meshwork.io/v1alpha1
kind: RetryPolicy
metadata: {name: mid}
spec: {targetRef: {name: mid}, attempts: 2, retryOn: [5xx]}
---
apiVersion: meshwork.io/v1alpha1
kind: RetryPolicy
metadata: {name: back}
spec: {targetRef: {name: back}, attempts: 3, retryOn: [5xx]}
"""


def findings(policies: str) -> list[str]:
    loaded = load_text(INVENTORY + policies, "t.yaml")
    return [f"{f.code} {f.subject}" for f in analyze(loaded.state())]


def test_every_code_has_a_trigger() -> None:
    assert sorted(TRIGGERS) == sorted(CODES)


@pytest.mark.parametrize("code", sorted(TRIGGERS))
def test_each_finding_code_is_triggered_by_its_mesh_and_only_it(code: str) -> None:
    found = findings(TRIGGERS[code])
    assert found and {f.split()[0] for f in found} == {code}, found


def test_the_shadowed_rule_and_the_one_shadowing_it_are_named() -> None:
    loaded = load_text(INVENTORY + TRIGGERS["MW0002"], "t.yaml")
    [finding] = analyze(loaded.state())
    assert "'api-v2' can never match" in finding.message and "'everything-api'" in finding.message


def test_retries_at_two_hops_are_amplification_with_the_product_of_tries() -> None:
    loaded = load_text(INVENTORY + CHAIN, "t.yaml")
    [finding] = analyze(loaded.state())
    assert finding.code == "MW0003"
    assert "default/front-1 -> mid.default" in finding.message and "up to 12 tries" in finding.message


def test_the_example_and_golden_meshes_have_no_analysis_finding_but_the_conflicts_case() -> None:
    clean = [ROOT / "examples" / "mesh"] + [
        p / "input.yaml"
        for p in sorted((ROOT / "tests" / "golden" / "cases").iterdir())
        if p.name not in {"invalid-and-conflicts", "transparent-scoped"}
    ]
    for path in clean:
        assert analyze(load_paths([path]).state()) == [], path
    scoped = analyze(load_paths([ROOT / "tests/golden/cases/transparent-scoped/input.yaml"]).state())
    assert [(f.code, f.subject) for f in scoped] == [("MW0006", "Mesh/default")]  # billing/gone, on purpose


def test_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    warn = tmp_path / "warn.yaml"
    warn.write_text(INVENTORY + TRIGGERS["MW0002"])
    assert main(["check", "-f", str(warn)]) == 0  # warnings only
    out = capsys.readouterr().out
    assert "[warn] MW0002 TrafficPolicy/default/mid" in out and "0 error(s), 1 warning(s)" in out
    error = tmp_path / "error.yaml"
    error.write_text(INVENTORY + TRIGGERS["MW0005"])
    assert main(["check", "-f", str(error), "-o", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert [c["code"] for c in doc["checks"]] == ["MW0005"]
    assert doc["checks"][0]["subject"] == "AccessPolicy/default/back"
    assert main(["check", "-f", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "Traceback" not in err
    assert main(["check"]) == 2
    assert "nothing to check" in capsys.readouterr().err
