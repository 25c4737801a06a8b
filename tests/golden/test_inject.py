"""Injection goldens: input pod -> injected pod (or the reason it is skipped, or the error that refuses it).

Each case is ``tests/golden/inject/<case>/input.yaml``: Namespace documents (their labels) and one Pod. The
expected result is ``output.yaml`` beside it. The same cases also go through the admission handler: its JSON
patch applied to the input must give exactly the golden pod. Rewrite with ``pytest tests/golden --update-golden``
and review the diff.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_operator.inject import InjectionError, InjectionSettings, inject_pod, review
from mesh_operator.inject.pod import Injected

CASES_DIR = Path(__file__).parent / "inject"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "input.yaml").is_file())


def load_case(case: str) -> tuple[dict[str, Any], InjectionSettings]:
    docs = list(yaml.safe_load_all((CASES_DIR / case / "input.yaml").read_text()))
    labels = {d["metadata"]["name"]: d["metadata"].get("labels", {}) for d in docs if d["kind"] == "Namespace"}
    (pod,) = (d for d in docs if d["kind"] == "Pod")
    return pod, InjectionSettings(namespace_labels=labels.get)


def render(case: str) -> dict[str, Any]:
    pod, settings = load_case(case)
    try:
        result = inject_pod(pod, settings)
    except InjectionError as exc:
        return {"refused": str(exc)}
    if isinstance(result, Injected):
        return {"warnings": list(result.warnings), "pod": result.pod}
    return {"skipped": result.reason, "warns": result.notable}


def apply_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """An independent RFC 6902 applier (add/remove/replace), to check the handler's patch."""
    doc = json.loads(json.dumps(doc))
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        if isinstance(parent, list):
            if op["op"] == "add":
                parent.insert(len(parent) if last == "-" else int(last), op["value"])
            elif op["op"] == "remove":
                del parent[int(last)]
            else:
                parent[int(last)] = op["value"]
        elif op["op"] == "remove":
            del parent[last]
        elif op["op"] == "replace":
            assert last in parent, f"replace of a missing member {op['path']}"
            parent[last] = op["value"]
        else:
            parent[last] = op["value"]
    return doc


def test_there_are_at_least_25_injection_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES)
def test_injected_pod_matches_golden(case: str, update_golden: bool) -> None:
    text = yaml.safe_dump(render(case), sort_keys=False, width=120)
    expected = CASES_DIR / case / "output.yaml"
    if update_golden:
        expected.write_text(text)
        return
    assert expected.read_text() == text, f"{case} differs; rerun with --update-golden and review"


@pytest.mark.parametrize("case", CASES)
def test_admission_patch_gives_the_golden_pod(case: str) -> None:
    pod, settings = load_case(case)
    golden = yaml.safe_load((CASES_DIR / case / "output.yaml").read_text())
    request = {
        "uid": f"uid-{case}",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE",
        "namespace": pod["metadata"]["namespace"],
        "object": pod,
    }
    response = review(request, settings)
    assert response["uid"] == f"uid-{case}"
    if "refused" in golden:
        assert response["allowed"] is False
        assert response["status"]["code"] == 400
        assert golden["refused"] in response["status"]["message"]
        return
    assert response["allowed"] is True
    if "skipped" in golden:
        assert "patch" not in response
        assert golden["skipped"] in response["status"]["message"]
        assert ("warnings" in response) == golden["warns"]
        return
    assert response["patchType"] == "JSONPatch"
    patched = apply_patch(pod, json.loads(base64.b64decode(response["patch"])))
    assert patched == golden["pod"]
    assert response.get("warnings", []) == [f"meshwork: {w}" for w in golden["warnings"]]
