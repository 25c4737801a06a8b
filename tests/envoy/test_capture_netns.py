"""Transparent capture, for real, without a cluster: pods are network namespaces this test creates.

Topology (every address is in 10.250.0.0/16, inside the lab's own namespaces; nothing reaches the host)::

    client 10.250.0.1   capture rules + a real Envoy (transparent mode, UID 1337): the app calls the backend
                        Service at its ClusterIP 10.250.1.10:80, by Host, or addresses outside the mesh
    server 10.250.0.2   capture rules + a real Envoy (STRICT mTLS inbound): the backend app on :8080, and plain
                        servers on :9100 (inbound port excluded from capture) and :9200 (not excluded)
    outside 10.250.0.3  no sidecar: plain servers on :9000 and :9001 (an outbound port the client excludes)

The capture rules are the injector's (``mesh_operator.inject.capture``, applied by its entry point exactly as the
init container does); the Envoy config is the translator's transparent mode, as static bootstraps.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesh_operator.inject.capture import CaptureSpec
from mesh_operator.loader import load_text
from mesh_operator.render import bootstrap
from mesh_operator.testing.netns import NetnsLab, missing_tools
from xds_server.ca import SpiffeId, TrustBundle, create_root
from xds_server.envoy_binary import envoy_path

PROXY_UID = 1337
CLUSTER_IP = "10.250.1.10"
CLIENT, SERVER, OUTSIDE = "10.250.0.1", "10.250.0.2", "10.250.0.3"

MESH = """\
apiVersion: meshwork.io/v1alpha1
kind: Mesh
metadata: {{name: default}}
spec:
  outboundTrafficPolicy: {policy}
  accessLog: {{enabled: false}}
---
apiVersion: meshwork.io/v1alpha1
kind: Inventory
metadata: {{name: shop}}
spec:
  services:
    - name: backend
      namespace: shop
      clusterIP: 10.250.1.10
      ports: [{{port: 80}}]
      instances:
        - {{name: backend-1, address: 10.250.0.2, port: 8080, serviceAccount: backend, sidecar: {{mode: Transparent}}}}
  clients:
    - {{name: web-1, namespace: shop, serviceAccount: web, sidecar: {{mode: Transparent}}}}
---
apiVersion: meshwork.io/v1alpha1
kind: TrafficPolicy
metadata: {{name: backend, namespace: shop}}
spec:
  targetRef: {{name: backend}}
  rules:
    - name: teapot
      matches: [{{path: {{type: Exact, value: /teapot}}}}]
      fault: {{abort: {{httpStatus: 418}}}}
    - name: tagged
      requestHeaders:
        set: [{{name: x-routed-by, value: trafficpolicy-backend}}]
"""


@pytest.fixture(scope="module")
def lab_ready() -> None:
    reason = missing_tools()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the capture tests are required in CI (CI=true): {reason}", pytrace=False)
        pytest.skip(f"capture tests skipped: {reason}")


def _write_certs(d: Path, ca: Any, spiffe: str) -> None:
    leaf = ca.issue_keypair(SpiffeId.parse(spiffe))
    d.mkdir(parents=True)
    (d / "cert.pem").write_bytes(leaf.chain_pem)
    (d / "key.pem").write_bytes(leaf.private_key_pem)
    (d / "ca.pem").write_bytes(TrustBundle.of(ca.root).to_pem())
    for f in (d, *d.iterdir()):
        os.chown(f, PROXY_UID, PROXY_UID)
    (d / "key.pem").chmod(0o600)


class Pods:
    """The lab plus one Envoy per meshed pod."""

    def __init__(self, lab: NetnsLab, work: Path, policy: str) -> None:
        self.lab = lab
        self.work = work
        loaded = load_text(MESH.format(policy=policy), "mesh.yaml")
        assert not loaded.errors, loaded.problems
        self.state = loaded.state()
        self.ca = create_root("cluster.local")

    def sidecar(self, pod: str, node: str, spec: CaptureSpec) -> None:
        d = self.work / pod
        w = self.state.workloads[node]
        _write_certs(d, self.ca, f"spiffe://cluster.local/ns/{w.namespace}/sa/{w.service_account}")
        (d / "envoy.json").write_text(json.dumps(bootstrap(self.state, node, certs_dir=d)))
        os.chown(d / "envoy.json", PROXY_UID, PROXY_UID)
        # The init container's job, with its entry point.
        self.lab.run(pod, [sys.executable, "-m", "mesh_operator.inject.capture", *spec.args()])
        argv = [
            str(envoy_path()),
            "-c",
            str(d / "envoy.json"),
            "--disable-hot-restart",
            "--log-level",
            "warning",
            "--log-path",
            str(d / "envoy.log"),
            "--concurrency",
            "1",
        ]
        self.lab.spawn(pod, argv, uid=PROXY_UID, log=d / "envoy.out")
        ready = self.lab.wait_http(pod, "127.0.0.1", 15000, "/ready")
        assert ready.get("status") == 200, f"{pod} sidecar not ready: {ready}; {(d / 'envoy.log').read_text()[-2000:]}"

    def accepted_connections(self, pod: str) -> int:
        """Connections Envoy accepted on all its listeners (the capture listener and those it hands over to)."""
        got = self.lab.http_get(pod, "127.0.0.1", 15000, "/stats?filter=downstream_cx_total$")
        total = 0
        for line in got["body"].splitlines():
            key, _, value = line.partition(": ")
            if key.startswith("listener.") and not key.startswith("listener.admin.") and ".worker_" not in key:
                total += int(value)
        return total


def _pods(policy: str) -> Iterator[Pods]:
    work = Path(tempfile.mkdtemp(prefix="meshwork-capture-"))
    work.chmod(0o755)
    try:
        with NetnsLab() as lab:
            lab.add("client", f"{CLIENT}/24")
            lab.add("server", f"{SERVER}/24")
            lab.add("outside", f"{OUTSIDE}/24")
            lab.route("client", "10.250.1.0/24")
            lab.echo_server("server", "backend", "0.0.0.0", 8080)
            lab.echo_server("server", "server-9100", "0.0.0.0", 9100)
            lab.echo_server("server", "server-9200", "0.0.0.0", 9200)
            lab.echo_server("outside", "outside-9000", OUTSIDE, 9000)
            lab.echo_server("outside", "outside-9001", OUTSIDE, 9001)
            for pod, addr, port in (
                ("server", "127.0.0.1", 8080),
                ("outside", OUTSIDE, 9000),
                ("outside", OUTSIDE, 9001),
            ):
                assert "status" in lab.wait_http(pod, addr, port), f"{pod}:{port} did not start"
            pods = Pods(lab, work, policy)
            pods.sidecar("server", "shop/backend-1", CaptureSpec(exclude_inbound_ports=(9100,)))
            pods.sidecar("client", "shop/web-1", CaptureSpec(exclude_outbound_ports=(9001,)))
            yield pods
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def allow_any(lab_ready: None) -> Iterator[Pods]:
    yield from _pods("AllowAny")


@pytest.fixture(scope="module")
def registry_only(lab_ready: None) -> Iterator[Pods]:
    yield from _pods("RegistryOnly")


def body(got: dict[str, Any]) -> dict[str, Any]:
    assert got.get("status") == 200, got
    data: dict[str, Any] = json.loads(got["body"])
    return data


def test_a_plain_http_call_to_the_service_cluster_ip_is_captured_routed_by_the_traffic_policy_over_mtls(
    allow_any: Pods,
) -> None:
    lab = allow_any.lab
    got = body(lab.http_get("client", CLUSTER_IP, 80, "/hello"))
    assert got["server"] == "backend"
    assert got["path"] == "/hello"
    assert got["headers"]["x-routed-by"] == "trafficpolicy-backend"  # the client sidecar applied the policy
    # The server sidecar terminated mTLS and saw the client's identity.
    assert "URI=spiffe://cluster.local/ns/shop/sa/web" in got["headers"]["x-forwarded-client-cert"]
    teapot = lab.http_get("client", CLUSTER_IP, 80, "/teapot")
    assert teapot["status"] == 418


@pytest.mark.parametrize(
    "host", ["backend", "backend.shop", "backend.shop.svc", "backend.shop.svc.cluster.local", "backend.shop:80"]
)
def test_a_call_by_service_name_is_routed_by_host_whatever_address_it_dialed(allow_any: Pods, host: str) -> None:
    # The outside address has nothing on :80: only Host routing in the client sidecar can answer.
    got = body(allow_any.lab.http_get("client", OUTSIDE, 80, "/by-host", host=host))
    assert got["server"] == "backend"
    assert got["headers"]["x-routed-by"] == "trafficpolicy-backend"


def test_an_unknown_destination_passes_through_to_the_address_the_app_dialed(allow_any: Pods) -> None:
    got = body(allow_any.lab.http_get("client", OUTSIDE, 9000, "/out"))
    assert got["server"] == "outside-9000"
    assert "x-forwarded-client-cert" not in got["headers"]


def test_the_sidecars_own_connections_are_not_captured_again(allow_any: Pods) -> None:
    before = allow_any.accepted_connections("client")
    for _ in range(3):
        body(allow_any.lab.http_get("client", CLUSTER_IP, 80, "/once"))
    body(allow_any.lab.http_get("client", OUTSIDE, 9000, "/once"))
    # Four app connections, four captured: Envoy's own upstream connections (as UID 1337) went straight out.
    assert allow_any.accepted_connections("client") - before == 4


def test_inbound_capture_enforces_strict_mtls_except_on_an_excluded_port(allow_any: Pods) -> None:
    lab = allow_any.lab
    # Plaintext from outside the mesh to the app port is captured into the mTLS listener and refused.
    assert "error" in lab.http_get("outside", SERVER, 8080, "/")
    # An excluded inbound port reaches the app directly; a port without a chain is captured and closed.
    assert body(lab.http_get("outside", SERVER, 9100, "/"))["server"] == "server-9100"
    assert "error" in lab.http_get("outside", SERVER, 9200, "/")


def test_under_registry_only_an_unknown_destination_is_refused(registry_only: Pods) -> None:
    lab = registry_only.lab
    assert "error" in lab.http_get("client", OUTSIDE, 9000, "/out")
    # HTTP on a port a Service uses, to an unknown Host: the sidecar answers 502 itself.
    refused = lab.http_get("client", OUTSIDE, 80, "/", host="elsewhere.example")
    assert refused["status"] == 502
    assert "RegistryOnly" in refused["body"]
    # The registry still works.
    assert body(lab.http_get("client", CLUSTER_IP, 80, "/ok"))["server"] == "backend"


def test_an_excluded_outbound_port_is_not_captured_even_under_registry_only(registry_only: Pods) -> None:
    got = body(registry_only.lab.http_get("client", OUTSIDE, 9001, "/direct"))
    assert got["server"] == "outside-9001"
