"""Third-party parts some capability tests need (built from package registries by the project's scripts): missing,
the test is skipped with the reason, except in CI (``CI=true``), where the run fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


def require(what: str, build: Callable[[], Path], *, programs: tuple[str, ...] = ()) -> None:
    problem = ""
    try:
        build()
    except (subprocess.CalledProcessError, OSError) as e:
        lines = str(getattr(e, "stderr", "") or e).strip().splitlines()
        problem = lines[-1] if lines else str(e)
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        problem = f"{', '.join(missing)} not on PATH"
    if not problem:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required in CI (CI=true) but missing: {problem}", pytrace=False)
    pytest.skip(f"{what} missing: {problem}")
