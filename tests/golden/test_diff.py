"""Golden tests of ``meshctl diff`` over before/after pairs: the text a reviewer reads, the JSON a pipeline parses,
and the exit code (0 no change, 1 changes). Each case is ``tests/golden/diff/<case>/case.yaml`` (the current mesh
directory and the files laid over it); expected output beside it as ``diff.txt`` and ``diff.json``. After an
intended change: ``pytest tests/golden/test_diff.py --update-golden`` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from meshctl.cli import main

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = Path(__file__).parent / "diff"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "case.yaml").is_file())


def run_case(
    case: str, output: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    spec = yaml.safe_load((CASES_DIR / case / "case.yaml").read_text())
    monkeypatch.chdir(ROOT)
    argv = ["diff", "--against", spec["against"], "-o", output]
    for f in spec["files"]:
        argv += ["-f", f]
    code = main(argv)
    out, err = capsys.readouterr()
    assert err == ""
    return code, out


@pytest.mark.parametrize("case", CASES)
def test_diff_output_matches_the_golden_text_and_json(
    case: str, update_golden: bool, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, text = run_case(case, "text", capsys, monkeypatch)
    json_code, raw = run_case(case, "json", capsys, monkeypatch)
    data = json.loads(raw)
    assert code == json_code == (1 if data["changed"] else 0)
    rendered = {"diff.txt": text, "diff.json": json.dumps(data, indent=1, sort_keys=True) + "\n"}
    for name, content in rendered.items():
        path = CASES_DIR / case / name
        if update_golden:
            path.write_text(content)
        assert path.is_file(), f"{path} missing: run pytest --update-golden and review it"
        assert content == path.read_text(), f"{case}/{name} differs: run pytest --update-golden and review the diff"


def _summary(case: str) -> dict[str, object]:
    summary: dict[str, object] = json.loads((CASES_DIR / case / "diff.json").read_text())["summary"]
    return summary


def test_a_change_to_one_access_policy_touches_one_proxy_of_a_hundred() -> None:
    assert _summary("hundred") == {
        "proxies_changed": 1,
        "proxies_total": 100,
        "namespaces": ["team-2"],
        "services": ["svc-42.team-2"],
    }


def test_a_mesh_wide_change_touches_every_proxy_in_every_namespace() -> None:
    s = _summary("hundred-all")
    assert (s["proxies_changed"], s["proxies_total"]) == (100, 100)
    assert s["namespaces"] == ["team-0", "team-1", "team-2", "team-3"]


def test_reapplying_what_is_in_force_is_no_change_and_exits_zero() -> None:
    assert _summary("no-change")["proxies_changed"] == 0
    assert (CASES_DIR / "no-change" / "diff.txt").read_text().startswith("no change")


def test_every_changed_resource_of_the_example_names_the_policy_that_changed_it() -> None:
    data = json.loads((CASES_DIR / "example" / "diff.json").read_text())
    culprits = {c for p in data["proxies"] for r in p["resources"] for c in r["culprits"]}
    assert culprits == {"TrafficPolicy/shop/backend", "RetryPolicy/shop/backend", "AccessPolicy/shop/backend"}
    assert all(r["culprits"] for p in data["proxies"] for r in p["resources"])


def test_broken_yaml_and_unreadable_files_are_one_line_errors_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: TrafficPolicy\nspec: [unclosed\n")
    assert main(["diff", "-f", str(bad), "--against", str(ROOT / "examples" / "mesh")]) == 2
    assert "invalid YAML at line" in capsys.readouterr().err
    assert main(["diff", "-f", str(tmp_path / "missing.yaml"), "--against", str(ROOT / "examples" / "mesh")]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "Traceback" not in err
