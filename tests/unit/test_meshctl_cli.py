"""meshctl validate and render, as a user runs them: exit codes and the messages they print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from meshctl.cli import main

EXAMPLE = Path(__file__).parents[2] / "examples" / "mesh"


def test_validate_accepts_the_example_mesh(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-f", str(EXAMPLE)]) == 0
    assert "object(s) valid" in capsys.readouterr().out


def test_validate_prints_every_violation_with_file_object_and_field_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: split, namespace: shop}
spec:
  targetRef: {name: backend}
  subsets: [{name: v1, labels: {version: v1}}]
  rules: [{backends: [{subset: v1, weight: 70}, {subset: v2, weight: 20}]}]
"""
    )
    assert main(["validate", "-f", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad} (TrafficPolicy shop/split): spec.rules[0].backends: weights must sum to 100 (they sum to 90)" in err
    assert "spec.rules[0].backends[1].subset: unknown subset 'v2'" in err
    assert "2 error(s)" in err


def test_validate_reports_broken_yaml_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("kind: TrafficPolicy\nspec: [unclosed\n")
    assert main(["validate", "-f", str(bad)]) == 1
    assert "invalid YAML at line" in capsys.readouterr().err


def test_validate_reports_an_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-f", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml: cannot read" in capsys.readouterr().err


def test_render_prints_the_proxy_resources_as_envoy_proto_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(EXAMPLE), "--node", "shop/frontend", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["identity"] == "spiffe://example.org/ns/shop/sa/frontend"
    assert {c["name"] for c in doc["clusters"]} >= {"backend.shop|8080|v1", "backend.shop|8080|v2"}
    assert doc["listeners"][0]["@type"] == "type.googleapis.com/envoy.config.listener.v3.Listener"


def test_render_bootstrap_is_a_complete_static_envoy_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(EXAMPLE), "--node", "shop/backend-v2", "--bootstrap"]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    assert doc["static_resources"]["listeners"] and doc["static_resources"]["clusters"]
    assert {s["name"] for s in doc["static_resources"]["secrets"]} == {"default", "ROOTCA"}


def test_render_names_the_known_workloads_when_the_node_is_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(EXAMPLE), "--node", "shop/nobody"]) == 1
    err = capsys.readouterr().err
    assert "unknown workload 'shop/nobody'" in err
    assert "shop/frontend" in err


def test_render_refuses_a_node_that_is_not_namespace_slash_workload(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(EXAMPLE), "--node", "frontend"]) == 1
    assert "NAMESPACE/WORKLOAD" in capsys.readouterr().err


def test_status_says_clearly_when_no_control_plane_is_running(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--admin", "http://127.0.0.1:9"]) == 2
    assert "cannot reach the control plane" in capsys.readouterr().err


def test_an_object_over_the_size_limit_is_refused_with_the_limit_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = "".join(
        f"\n    - {{name: r{i}, requestHeaders: {{set: [{{name: x-a, value: {'v' * 4000}}}]}}}}" for i in range(400)
    )
    (tmp_path / "big.yaml").write_text(
        "apiVersion: meshwork.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: big}\n"
        f"spec:\n  targetRef: {{name: backend}}\n  rules:{rules}\n"
    )
    assert main(["validate", "-f", str(tmp_path)]) == 1
    assert "the limit is 1572864 (1.5 MiB)" in capsys.readouterr().err
