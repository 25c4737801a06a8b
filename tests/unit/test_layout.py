"""The repository's layout rules hold."""

from __future__ import annotations

import operator
import sysconfig
from pathlib import Path

import mesh_operator

ROOT = Path(__file__).parents[2]


def test_the_stdlib_operator_module_is_not_shadowed_by_the_operator_folder() -> None:
    assert Path(operator.__file__).is_relative_to(sysconfig.get_paths()["stdlib"])
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_mesh_operator_is_imported_from_the_operator_folder() -> None:
    assert Path(mesh_operator.__file__).parent == ROOT / "operator" / "mesh_operator"


def test_every_python_module_stays_under_600_lines() -> None:
    too_long = {
        str(p.relative_to(ROOT)): n
        for base in ("meshctl", "xds_server", "operator")
        for p in (ROOT / base).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 600
    }
    assert too_long == {}
