"""``meshctl local run --envoy-concurrency N`` sets the sidecars' worker threads (bench/dataplane.py tunes it)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mesh_operator.local.sidecar import SidecarFiles, envoy_argv
from meshctl.cli import main


def _files(tmp_path: Path) -> SidecarFiles:
    return SidecarFiles(tmp_path, tmp_path / "bootstrap.json", datetime.now(UTC))


def test_sidecars_run_with_the_worker_threads_asked_for(tmp_path: Path) -> None:
    argv = envoy_argv(_files(tmp_path), "warning", 1)
    assert argv[argv.index("--concurrency") + 1] == "1"


def test_sidecars_keep_envoys_default_worker_threads_unless_asked(tmp_path: Path) -> None:
    assert "--concurrency" not in envoy_argv(_files(tmp_path))


def test_local_run_refuses_zero_worker_threads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["local", "run", "-f", str(tmp_path), "--envoy-concurrency", "0"])
    assert code == 2
    assert "--envoy-concurrency must be at least 1" in capsys.readouterr().err
