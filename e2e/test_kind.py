"""Story: users with Docker run the same e2e stories on kind (scripts/kind/e2e.sh: a kind cluster, the images built
with Docker from the Containerfiles and `kind load`ed, the stories through the fixtures' existing-cluster mode).
Where Docker or kind is missing (this machine: the stories run on the project's own single-node cluster instead),
it is skipped with the reason shown, never silently."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mesh_operator.testing.existing_cluster import existing_kubeconfig

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "kind" / "e2e.sh"


def _docker_problem() -> str | None:
    problems = []
    if shutil.which("kind") is None:
        problems.append("kind is not installed")
    if shutil.which("docker") is None:
        problems.append("docker is not installed")
    else:
        done = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            problems.append(f"docker info failed: {' '.join(done.stderr.split())[:200]}")
    return "; ".join(problems) or None


@pytest.mark.kind
def test_the_e2e_stories_run_on_kind_where_docker_is_available() -> None:
    if existing_kubeconfig() is not None:
        pytest.skip("kind tier skipped: this run already targets an existing cluster (MESHWORK_E2E_KUBECONFIG)")
    problem = _docker_problem()
    if problem is not None:
        pytest.skip(f"kind tier skipped: {problem}; the stories ran on the project's real single-node cluster")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHWORK_E2E_")}
    done = subprocess.run(
        ["bash", str(SCRIPT), "e2e", "-x", "-q"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=3600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (
        f"scripts/kind/e2e.sh exited {done.returncode}:\n{done.stdout[-6000:]}{done.stderr[-3000:]}"
    )
    assert " passed" in done.stdout and " failed" not in done.stdout, done.stdout[-3000:]
