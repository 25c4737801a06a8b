"""``meshctl apply --wait`` in local mode, with real Envoy sidecars: it returns 0 only once the proxies have ACKed
(and the mesh then does what the policy says), fails naming the proxy and Envoy's error on a NACK, and on a
timeout lists the proxies still behind."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
import yaml

from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh
from meshctl.cli import main

HEADER_POLICY = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend}
spec:
  targetRef: {name: backend}
  rules:
    - name: tagged
      requestHeaders: {set: [{name: x-applied, value: "VALUE"}]}
"""


def _mesh(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])


def _apply(m: RunningMesh, path: Path, *extra: str) -> int:
    admin = f"http://127.0.0.1:{m.admin_port}"
    return main(["apply", "-f", str(path), "--local", str(m.builder.mesh_dir), "--admin", admin, "--wait", *extra])


def test_apply_wait_returns_zero_only_after_every_proxy_acked_and_the_policy_is_in_force(
    mesh: LocalMeshBuilder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _mesh(mesh)
    policy = tmp_path / "backend-policy.yaml"
    policy.write_text(HEADER_POLICY.replace("VALUE", "one"))
    with mesh.run() as m:
        assert _apply(m, policy) == 0
        # No extra waiting: at return every proxy runs the config the control plane wants, carrying the policy.
        assert m.versions() == m.desired()
        receipt = m.policies()["TrafficPolicy/default/backend"]
        assert (receipt["applied"], receipt["proxies"]) == (1, 1)  # the caller's outbound routes carry it
        assert m.get("caller", "backend", "/").json()["headers"]["x-applied"] == "one"
        out = capsys.readouterr()
        assert "backend-policy.yaml: written" in out.out and "in force" in out.out

        # A second apply of a new version: the same, with the new value in force at return.
        policy.write_text(HEADER_POLICY.replace("VALUE", "two"))
        assert _apply(m, policy) == 0
        assert m.get("caller", "backend", "/").json()["headers"]["x-applied"] == "two"
        # Applying what is already there changes nothing and returns at once with 0.
        assert _apply(m, policy) == 0
        assert "unchanged" in capsys.readouterr().out


def test_a_config_envoy_rejects_fails_the_apply_naming_the_proxy_and_envoys_error(
    mesh: LocalMeshBuilder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _mesh(mesh)
    with socket.socket() as taken, mesh.run() as m:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # A new workload whose outbound port is already in use: its Envoy cannot bind the listener and NACKs.
        inventory = yaml.safe_load((mesh.mesh_dir / "inventory.yaml").read_text())
        inventory["spec"]["clients"].append(
            {
                "name": "newcomer",
                "namespace": "default",
                "serviceAccount": "newcomer",
                "sidecar": {"upstreams": [{"service": "backend", "localPort": port}]},
            }
        )
        extra = tmp_path / "inventory.yaml"
        extra.write_text(yaml.safe_dump(inventory, sort_keys=False))
        capsys.readouterr()
        assert _apply(m, extra, "--timeout", "60s") == 1
        err = capsys.readouterr().err
        assert "default/newcomer rejected" in err
        assert "address already in use" in err.lower()


def test_a_timeout_fails_the_apply_listing_the_proxies_still_behind(
    mesh: LocalMeshBuilder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _mesh(mesh)
    policy = tmp_path / "backend-policy.yaml"
    policy.write_text(HEADER_POLICY.replace("VALUE", "frozen"))
    with mesh.run() as m:
        pid = int((mesh.state_dir / "proxies" / "default_caller" / "envoy.pid").read_text().split()[0])
        os.kill(pid, signal.SIGSTOP)  # the caller's Envoy cannot ACK anything now
        try:
            capsys.readouterr()
            assert _apply(m, policy, "--timeout", "3s") == 1
        finally:
            os.kill(pid, signal.SIGCONT)
        err = capsys.readouterr().err
        assert "timed out after 3s" in err
        behind = [line for line in err.splitlines() if line.startswith("meshctl: still behind:")]
        assert [line.split()[3] for line in behind] == ["default/caller"]


def test_bad_input_and_an_unreachable_control_plane_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: TrafficPolicy\nspec: [oops\n")
    assert main(["apply", "-f", str(bad), "--local", str(tmp_path)]) == 2
    assert "invalid YAML" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text(HEADER_POLICY.replace("VALUE", "x"))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    target = tmp_path / "mesh"
    target.mkdir()
    assert main(["apply", "-f", str(good), "--local", str(target), "--admin", f"http://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the control plane" in err and "Traceback" not in err
    assert not (target / "good.yaml").exists()  # nothing written when the control plane is not there
    assert main(["apply", "-f", str(good), "--local", str(target), "--timeout", "soon"]) == 2
    assert "--timeout must be a duration" in capsys.readouterr().err
