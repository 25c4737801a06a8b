"""Golden tests: input YAML (inventory + policies) -> the Envoy resources of every proxy, and every policy's status.

Expected output lives beside each case's ``input.yaml`` as ``<namespace>_<workload>.yaml`` (Envoy proto-JSON as
YAML) and ``status.yaml`` (and, with global rate limits, ``ratelimit-service.yaml``: the rate-limit service's config).
After an intended change, rewrite them with ``pytest tests/golden --update-golden``
and review the diff.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_operator.loader import load_text
from mesh_operator.render import resources
from mesh_operator.translate import translate_mesh
from mesh_operator.translate.gateway_status import route_status
from mesh_operator.translate.ratelimit_global import service_config
from mesh_operator.translate.scope import missing_services

CASES_DIR = Path(__file__).parent / "cases"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "input.yaml").is_file())


def render_case(case: str) -> dict[str, str]:
    """File name -> expected YAML text, for one case."""
    loaded = load_text((CASES_DIR / case / "input.yaml").read_text(), "input.yaml")
    state = loaded.state()
    out: dict[str, str] = {}
    for node in sorted(state.workloads):
        out[node.replace("/", "_") + ".yaml"] = _yaml(resources(state, node))
    translation = translate_mesh(state)
    outcomes = translation.outcomes
    status: dict[str, Any] = {
        "problems": [str(p) for p in loaded.problems],
        "policies": {str(k): o.condition() for k, o in sorted(outcomes.items(), key=lambda kv: str(kv[0]))},
    }
    if translation.routes:  # Gateway API routes: status.parents[] as the Gateway API specifies it
        status["routes"] = {
            str(k): route_status(o, k.namespace)
            for k, o in sorted(translation.routes.items(), key=lambda kv: str(kv[0]))
        }
    if missing := missing_services(state):  # sidecarEgress listing Services that do not exist
        status["sidecarEgress"] = [str(v) for v in missing]
    out["status.yaml"] = _yaml(status)
    rls = service_config(state)
    if rls["descriptors"]:
        out["ratelimit-service.yaml"] = _yaml(rls)
    return out


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=120)


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 5


@pytest.mark.parametrize("case", CASES)
def test_golden_output_matches(case: str, update_golden: bool) -> None:
    rendered = render_case(case)
    case_dir = CASES_DIR / case
    expected_files = {p.name for p in case_dir.glob("*.yaml") if p.name != "input.yaml"}
    if update_golden:
        for stale in expected_files - set(rendered):
            (case_dir / stale).unlink()
        for name, text in rendered.items():
            (case_dir / name).write_text(text)
        return
    assert expected_files == set(rendered), "proxies changed; rerun with --update-golden and review"
    for name, text in rendered.items():
        assert (case_dir / name).read_text() == text, f"{case}/{name} differs; rerun with --update-golden and review"
