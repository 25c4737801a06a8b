"""``meshctl check --admin`` against a running local mesh with real Envoy sidecars: the control plane answers, every
proxy is connected and in sync, and the root and issuer are valid for 60 more days; a root with less fails the
check (exit 1) and says so, as does a proxy that is not connected."""

from __future__ import annotations

import json
import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from mesh_operator.testing.localmesh import LocalMeshBuilder, eventually
from meshctl.cli import main
from xds_server.ca import create_root
from xds_server.ca.store import save_issuer


def _check(admin_port: int, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = main(["check", "--admin", f"http://127.0.0.1:{admin_port}", "-o", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_healthy_local_mesh_passes_every_check(mesh: LocalMeshBuilder, capsys: pytest.CaptureFixture[str]) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    with mesh.run() as m:
        code, doc = _check(m.admin_port, capsys)
        assert code == 0 and doc["ok"] is True
        by_code = {c["code"]: c for c in doc["checks"] if c["code"] == "proxies"}
        assert by_code["proxies"]["message"] == "all 2 connected and in sync"
        certs = [c for c in doc["checks"] if c["code"] == "certificates"]
        assert {c["subject"].split()[0] for c in certs} == {"root", "issuer"}
        assert all(c["level"] == "ok" for c in certs)


def test_a_root_with_less_than_60_days_left_fails_the_check(
    mesh: LocalMeshBuilder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = create_root("test.local", ttl=timedelta(days=45))
    ca_dir = tmp_path / "short-ca"
    save_issuer(ca_dir, root)
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    args = ["--ca-cert", str(ca_dir / "ca-cert.pem"), "--ca-key", str(ca_dir / "ca-key.pem")]
    with mesh.run(extra_args=args) as m:
        assert m.get("caller", "backend", "/").status == 200  # the mesh works today …
        code, doc = _check(m.admin_port, capsys)
        assert code == 1 and doc["ok"] is False  # … but the check fails: the root runs out in 45 days
        failing = [c for c in doc["checks"] if c["level"] == "error"]
        assert {c["code"] for c in failing} == {"certificates"}
        assert any(c["subject"].startswith("root") and "at least 60 days needed" in c["message"] for c in failing)


def test_a_proxy_that_stopped_answering_fails_the_check_once_it_falls_behind(
    mesh: LocalMeshBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    with mesh.run() as m:
        pid = int((mesh.state_dir / "proxies" / "default_caller" / "envoy.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        _, doc = eventually(lambda: (r := _check(m.admin_port, capsys))[0] == 1 and r, timeout=30)
        failing = {c["subject"]: c["message"] for c in doc["checks"] if c["level"] == "error"}
        assert list(failing) == ["default/caller"] and failing["default/caller"].startswith("NOT CONNECTED")


def test_an_unreachable_control_plane_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--admin", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the control plane" in err and "Traceback" not in err
