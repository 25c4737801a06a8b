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
