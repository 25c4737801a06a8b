"""Capability tests: a real local mesh (control plane, Envoy sidecars, demo apps) per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_operator.testing.localmesh import LocalMeshBuilder


@pytest.fixture
def mesh(tmp_path: Path) -> LocalMeshBuilder:
    return LocalMeshBuilder(tmp_path)
