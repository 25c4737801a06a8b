"""``bench/report.py`` builds the benchmark table from the result files the benches write, not from copied text."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


report = _module("report")


def _doc(bench: str, figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "bench": bench,
        "commit": "abc123",
        "dirty": False,
        "machine": {"cpu": "Test CPU", "cores": 2, "memory_gb": 4.0, "python": "3.11", "envoy": "1.40.0"},
        "load": {"start": {"loadavg_1m": 3.5}},
        "figures": figures,
    }


def _write(directory: Path, name: str, doc: dict[str, Any]) -> None:
    (directory / f"{name}.json").write_text(json.dumps(doc))


def test_the_table_shows_the_figures_machine_and_commit_of_every_result_file(tmp_path: Path) -> None:
    serialize = {"ours_serialize_s": 0.3, "serialize_s": 0.03, "resources": 8000, "bytes": 4_800_000, "repeats": 7}
    _write(tmp_path, "serialize", _doc("serialize", {"1000x5": {"serialize": serialize}}))
    push = {"clients": 10000, "envoys": 0, "mode": "sotw", "p50_ms": 900.0, "p99_ms": 1900.0, "max_ms": 2100.0}
    _write(tmp_path, "push", _doc("push", {"rows": [{**push, "cpu_ms_push": 5000.0, "rss_kb_stream": 42.0}]}))
    text = report.table(report.load_results(tmp_path))
    assert "**10.0x**" in text
    assert "p99 1900" in text and "42.0 KB per stream" in text
    assert "`push.json` @ abc123, load 3.5" in text
    assert "Test CPU (2 cores)" in text and "Envoy 1.40.0" in text


def test_writing_replaces_only_the_part_between_the_markers() -> None:
    doc = f"# Title\nbefore\n{report.START}\nold table\n{report.END}\nafter\n"
    out = report.replace_table(doc, "| new |")
    assert out == f"# Title\nbefore\n{report.START}\n| new |\n{report.END}\nafter\n"


def test_a_file_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        report.replace_table("# no markers\n", "| t |")


def test_the_incremental_and_apply_rows_come_from_their_result_files(tmp_path: Path) -> None:
    row = {
        "proxies": 10001,
        "resources": 80000,
        "policy_change_s": 0.0199,
        "policy_change_cpu_s": 0.0188,
        "policy_change_share_of_full": 0.0019,
        "full_build_s": 10.6,
        "full_build_warm_s": 1.49,
        "endpoint_change_s": 0.0166,
        "endpoint_change_cpu_s": 0.0148,
        "endpoint_change_only_eds": True,
    }
    _write(tmp_path, "incremental", _doc("incremental", {"5000x5": row}))
    apply = {"policies": 1000, "all_accepted_and_programmed_s": 9.5, "done": 1000, "creates_s": 6.0,
             "status_writes": 1000, "operator_rss_mib": {"peak": 170.0}}  # fmt: skip
    _write(tmp_path, "apply", _doc("apply", apply))
    text = report.table(report.load_results(tmp_path))
    assert "one policy change 19.9 ms wall / 18.8 ms CPU (0.19 % of a cold full build of 10.6 s" in text
    assert "EDS only: True" in text and "`incremental.json` @ abc123" in text
    assert "all Accepted+Programmed in 9.5 s (creates 6.0 s); 1000 status writes" in text


def test_the_scope_rows_compare_each_scoped_sidecar_with_the_full_one(tmp_path: Path) -> None:
    def setup(services: int, rss: float, ratio: float) -> dict[str, Any]:
        return {"services": services, "envoy_clusters": services + 2, "xds_kb": services * 2.3, "rss_mb": rss,
                "rss_ratio_to_full": ratio, "rss_anon_mb": rss - 56, "anon_ratio_to_full": ratio * 2}  # fmt: skip

    figures = {"services": 1000, "floor_rss_mb": 72.0, "setups": {"full": setup(1000, 224.0, 1.0),
               "narrow": setup(10, 74.0, 3.03)}}  # fmt: skip
    _write(tmp_path, "scope", _doc("scope", figures))
    text = report.table(report.load_results(tmp_path))
    assert "one Envoy in a 1000-service mesh, `full` | 1000 services, 1002 clusters" in text
    assert "`narrow` | 10 services, 12 clusters, xDS 23 KB; RSS 74.0 MB = **3.03x** below full" in text
    assert "admin-only Envoy 72.0 MB" in text and "`scope.json` @ abc123" in text
