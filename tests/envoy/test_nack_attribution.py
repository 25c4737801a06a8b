"""A NACK is pinned on the policy that caused it, among the three a proxy carries; the other two stay applied.

Validation and the pre-flight check would stop this bad policy long before Envoy sees it, so both are switched
off here (validation patched out in this process, the control plane run without a pre-flight): the only way to
get a real NACK from a real Envoy out of a policy.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

from mesh_operator.control import CertificateManager, ControlPlane
from mesh_operator.loader import load_paths
from mesh_operator.local import sidecar
from mesh_operator.testing.localmesh import LocalMeshBuilder
from mesh_operator.translate import policies
from xds_server.ca import store
from xds_server.ports import free_port

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(90)]

POLICIES = """
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: backend-split}
spec:
  targetRef: {name: backend}
  rules: [{name: all, timeouts: {request: 3s}}]
---
apiVersion: meshwork.io/v1alpha1
kind: RetryPolicy
metadata: {name: third-retries}
spec:
  targetRef: {name: third}
  attempts: 2
  retryOn: [connect-failure]
---
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {name: other-headers}
spec:
  targetRef: {name: other}
  rules: [{requestHeaders: {set: [{name: x-bad, value: "line\\nbreak"}]}}]
"""


async def test_a_nack_is_pinned_on_the_one_policy_that_caused_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policies, "validate_object", lambda obj: [])
    builder = LocalMeshBuilder(tmp_path)
    for name in ("backend", "other", "third"):
        builder.service(name)
    builder.client("caller", upstreams=["backend", "other", "third"])
    builder.policy(POLICIES)
    builder.write()
    issuer = store.load_or_create(tmp_path / "ca", "test.local")
    certs = CertificateManager(issuer, leaf_ttl=timedelta(hours=1))
    plane = ControlPlane(certs, ca_dir=tmp_path / "ca", preflight=None)
    await plane.start()
    envoy = None
    try:
        state = load_paths([builder.mesh_dir]).state()
        plane.apply(state)
        await plane.wait_translated()
        info = state.workloads["default/caller"]
        files = sidecar.prepare(tmp_path / "caller", info, certs, xds_port=plane.xds_port, admin_port=free_port())
        envoy = subprocess.Popen(sidecar.envoy_argv(files), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        deadline = time.monotonic() + 30
        receipts = plane.receipts()
        while time.monotonic() < deadline:
            receipts = plane.receipts()
            if receipts["TrafficPolicy/default/other-headers"]["rejected"]:
                break
            await asyncio.sleep(0.1)
        bad = receipts["TrafficPolicy/default/other-headers"]
        assert list(bad["rejected"]) == ["default/caller"], receipts
        assert "x-bad" in bad["rejected"]["default/caller"] or "HeaderValue" in bad["rejected"]["default/caller"]
        assert bad["attributed"] is True
        assert bad["summary"] == "rejected by 1 of 1 proxies"
        for innocent in ("TrafficPolicy/default/backend-split", "RetryPolicy/default/third-retries"):
            assert receipts[innocent]["rejected"] == {}, receipts[innocent]
            assert receipts[innocent]["applied"] == 1
            assert receipts[innocent]["summary"] == "in force on 1/1 proxies"
    finally:
        if envoy is not None:
            envoy.terminate()
            envoy.wait(timeout=10)
        await plane.stop()
