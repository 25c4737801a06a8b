"""A Service a Mesh's sidecarEgress lists but the mesh does not have shows in the control plane's status (admin
``/debug/policyz`` and ``meshctl status``) as a warning, and disappears once the Service exists."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from mesh_operator.control import CertificateManager, ControlPlane
from mesh_operator.loader import load_text
from meshctl.cli import main
from xds_server.ca import store

pytestmark = pytest.mark.timeout(120)

MESH = """\
apiVersion: meshwork.io/v1alpha1
kind: Mesh
metadata: {name: default}
spec:
  sidecarEgress: [{namespace: shop, services: [shop/api, shop/cache]}]
---
apiVersion: meshwork.io/v1alpha1
kind: Inventory
metadata: {name: shop}
spec:
  services:
    - {name: api, namespace: shop, clusterIP: 10.96.0.10, ports: [{port: 80}]}
%s
  clients:
    - {name: web-1, namespace: shop, serviceAccount: web, sidecar: {mode: Transparent}}
"""
CACHE = "    - {name: cache, namespace: shop, clusterIP: 10.96.0.11, ports: [{port: 6379, protocol: TCP}]}"
WARNING = "Mesh/default: spec.sidecarEgress[0].services[1]: service shop/cache does not exist (yet)"


def _policyz(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/debug/policyz", timeout=5) as r:
        data: dict[str, object] = json.loads(r.read())
    return data


def _meshctl_status(admin: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["status", "--admin", admin])
    return code, out.getvalue()


async def test_a_declared_service_that_does_not_exist_is_a_warning_in_the_status_until_it_exists(
    tmp_path: Path,
) -> None:
    issuer = store.load_or_create(tmp_path / "ca", "cluster.local")
    plane = ControlPlane(CertificateManager(issuer, leaf_ttl=timedelta(hours=1)), ca_dir=tmp_path / "ca")
    await plane.start()
    try:
        plane.apply(load_text(MESH % "", "mesh.yaml").state())
        await plane.wait_translated()
        policyz = await asyncio.to_thread(_policyz, plane.admin.port)
        assert policyz["problems"] == []
        [warning] = policyz["warnings"]  # type: ignore[misc]
        assert str(warning).startswith(WARNING)
        _, text = await asyncio.to_thread(_meshctl_status, f"http://127.0.0.1:{plane.admin.port}")
        assert f"warning: {WARNING}" in text

        plane.apply(load_text(MESH % CACHE, "mesh.yaml").state())
        await plane.wait_translated()
        policyz = await asyncio.to_thread(_policyz, plane.admin.port)
        assert policyz["warnings"] == []
    finally:
        await plane.stop()
