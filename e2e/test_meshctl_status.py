"""Story: `meshctl status` against the cluster shows every injected pod SYNCED (and the namespace's policies).
The control plane's admin endpoint stays on loopback inside its pod; meshctl reaches it through
`kubectl port-forward` (the API server and kubelet tunnel; nothing else is exposed)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from e2e.kit import NS, Mesh, Namespace, deploy_example_app, pods, wait_synced


@pytest.fixture(scope="module")
def shop(mesh: Mesh) -> Iterator[str]:
    ns = Namespace(mesh.cluster, "status")
    deploy_example_app(mesh, ns.name)
    try:
        yield ns.name
    finally:
        ns.delete()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_meshctl_status_on_the_cluster_shows_every_injected_pod_synced(mesh: Mesh, shop: str) -> None:
    c = mesh.cluster
    wait_synced(mesh, shop, 4)
    port = _free_port()
    pod = mesh.control_plane_pods()[0]["metadata"]["name"]
    forward = subprocess.Popen(
        [str(c.binaries["kubectl"]), f"--kubeconfig={c.kubeconfig_path}", "port-forward", "-n", NS,
         f"pod/{pod}", f"{port}:15014", "--address", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.3)
        done = subprocess.run(
            [sys.executable, "-m", "meshctl", "status", "--admin", f"http://127.0.0.1:{port}",
             "--kubeconfig", str(c.kubeconfig_path), "-n", shop, "-o", "json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        forward.terminate()
        forward.wait(10)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    rows = {r["proxy"]: r["state"] for r in report["proxies"] if str(r["proxy"]).startswith(f"{shop}/")}
    expected = {f"{shop}/{p['metadata']['name']}" for p in pods(c, shop, "app in (frontend,backend)")}
    assert set(rows) == expected, (rows, expected)
    assert set(rows.values()) == {"SYNCED"}, rows
