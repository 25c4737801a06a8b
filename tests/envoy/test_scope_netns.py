"""Sidecar scoping with real Envoy and real capture: pods are network namespaces this test creates.

Topology (every address is in 10.250.0.0/16, inside the lab's own namespaces; nothing reaches the host)::

    client 10.250.0.1   capture rules + a real Envoy (transparent, identity shop/web), scoped by the Mesh's
                        sidecarEgress (shop/backend, shop/secret, shop/missing) and by secret's AccessPolicy
    server 10.250.0.2   capture rules + a real Envoy (STRICT mTLS inbound): the backend app on :8080

Services: backend (ClusterIP 10.250.1.10, may be called by web), secret (10.250.1.20, its AccessPolicy lets only
shop/admin in), other (10.250.1.30, not declared). The client's Envoy must reach backend and hold no cluster,
listener or route for secret or other.
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
from mesh_operator.translate.scope import missing_services
from xds_server.ca import SpiffeId, TrustBundle, create_root
from xds_server.envoy_binary import envoy_path

PROXY_UID = 1337
CLIENT, SERVER = "10.250.0.1", "10.250.0.2"
BACKEND_IP, SECRET_IP, OTHER_IP = "10.250.1.10", "10.250.1.20", "10.250.1.30"

MESH = """\
apiVersion: meshwork.io/v1alpha1
kind: Mesh
metadata: {name: default}
spec:
  accessLog: {enabled: false}
  sidecarEgress:
    - {namespace: shop, serviceAccount: web, services: [shop/backend, shop/secret, shop/missing]}
---
apiVersion: meshwork.io/v1alpha1
kind: Inventory
metadata: {name: shop}
spec:
  services:
    - name: backend
      namespace: shop
      clusterIP: 10.250.1.10
      ports: [{port: 80}]
      instances:
        - {name: backend-1, address: 10.250.0.2, port: 8080, serviceAccount: backend, sidecar: {mode: Transparent}}
    - name: secret
      namespace: shop
      clusterIP: 10.250.1.20
      ports: [{port: 80}]
      instances:
        - {name: secret-1, address: 10.250.0.3, port: 8080, serviceAccount: secret, sidecar: {mode: Transparent}}
    - name: other
      namespace: shop
      clusterIP: 10.250.1.30
      ports: [{port: 80}]
      instances:
        - {name: other-1, address: 10.250.0.4, port: 8080, serviceAccount: other, sidecar: {mode: Transparent}}
  clients:
    - {name: web-1, namespace: shop, serviceAccount: web, sidecar: {mode: Transparent}}
---
apiVersion: meshwork.io/v1alpha1
kind: AccessPolicy
metadata: {name: secret, namespace: shop}
spec:
  targetRef: {name: secret}
  rules:
    - {action: Allow, from: [{serviceAccount: {namespace: shop, name: admin}}]}
"""


def _write_certs(d: Path, ca: Any, spiffe: str) -> None:
    leaf = ca.issue_keypair(SpiffeId.parse(spiffe))
    d.mkdir(parents=True)
    (d / "cert.pem").write_bytes(leaf.chain_pem)
    (d / "key.pem").write_bytes(leaf.private_key_pem)
    (d / "ca.pem").write_bytes(TrustBundle.of(ca.root).to_pem())
    for f in (d, *d.iterdir()):
        os.chown(f, PROXY_UID, PROXY_UID)
    (d / "key.pem").chmod(0o600)


class Lab:
    def __init__(self, lab: NetnsLab, work: Path) -> None:
        self.lab = lab
        self.work = work
        loaded = load_text(MESH, "mesh.yaml")
        assert not loaded.errors, loaded.problems
        self.state = loaded.state()
        self.ca = create_root("cluster.local")

    def sidecar(self, pod: str, node: str) -> None:
        d = self.work / pod
        w = self.state.workloads[node]
        _write_certs(d, self.ca, f"spiffe://cluster.local/ns/{w.namespace}/sa/{w.service_account}")
        (d / "envoy.json").write_text(json.dumps(bootstrap(self.state, node, certs_dir=d)))
        os.chown(d / "envoy.json", PROXY_UID, PROXY_UID)
        self.lab.run(pod, [sys.executable, "-m", "mesh_operator.inject.capture", *CaptureSpec().args()])
        argv = [str(envoy_path()), "-c", str(d / "envoy.json"), "--disable-hot-restart", "--log-level", "warning"]
        argv += ["--log-path", str(d / "envoy.log"), "--concurrency", "1"]
        self.lab.spawn(pod, argv, uid=PROXY_UID, log=d / "envoy.out")
        ready = self.lab.wait_http(pod, "127.0.0.1", 15000, "/ready")
        assert ready.get("status") == 200, f"{pod} sidecar not ready: {ready}; {(d / 'envoy.log').read_text()[-2000:]}"

    def config_dump(self, pod: str) -> str:
        got = self.lab.http_get(pod, "127.0.0.1", 15000, "/config_dump", timeout=10.0)
        assert got.get("status") == 200, got
        return str(got["body"])


@pytest.fixture(scope="module")
def scoped() -> Iterator[Lab]:
    reason = missing_tools()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the capture tests are required in CI (CI=true): {reason}", pytrace=False)
        pytest.skip(f"capture tests skipped: {reason}")
    work = Path(tempfile.mkdtemp(prefix="meshwork-scope-"))
    work.chmod(0o755)
    try:
        with NetnsLab() as lab:
            lab.add("client", f"{CLIENT}/24")
            lab.add("server", f"{SERVER}/24")
            lab.route("client", "10.250.1.0/24")
            lab.echo_server("server", "backend", "0.0.0.0", 8080)
            assert "status" in lab.wait_http("server", "127.0.0.1", 8080), "backend did not start"
            pods = Lab(lab, work)
            pods.sidecar("server", "shop/backend-1")
            pods.sidecar("client", "shop/web-1")
            yield pods
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_a_scoped_sidecar_still_reaches_the_declared_service_its_identity_may_call_over_mtls(scoped: Lab) -> None:
    got = scoped.lab.http_get("client", BACKEND_IP, 80, "/hello")
    assert got.get("status") == 200, got
    data = json.loads(got["body"])
    assert data["server"] == "backend"
    assert "URI=spiffe://cluster.local/ns/shop/sa/web" in data["headers"]["x-forwarded-client-cert"]
    by_name = scoped.lab.http_get("client", BACKEND_IP, 80, "/by-host", host="backend.shop.svc.cluster.local")
    assert by_name.get("status") == 200, by_name


def test_a_scoped_sidecar_has_no_config_for_a_refused_or_an_undeclared_service(scoped: Lab) -> None:
    dump = scoped.config_dump("client")
    assert "backend.shop|80" in dump
    for host, ip in (("secret.shop", SECRET_IP), ("other.shop", OTHER_IP)):
        assert host not in dump, f"{host} is in the client's Envoy config"
        assert ip not in dump, f"{ip} is in the client's Envoy config"
    # the server's own sidecar is not declared: it gets everything its identity may call (not secret)
    server = scoped.config_dump("server")
    assert "other.shop|80" in server and "secret.shop" not in server


def test_a_call_to_a_service_out_of_scope_is_not_routed_by_the_sidecar(scoped: Lab) -> None:
    # No destination listener for secret's ClusterIP: the connection passes through to an address no one has.
    got = scoped.lab.http_get("client", SECRET_IP, 80, "/", timeout=3.0)
    assert got.get("status") != 200, got


def test_the_declared_but_missing_service_is_reported() -> None:
    state = load_text(MESH, "mesh.yaml").state()
    assert [str(v) for v in missing_services(state)] == [
        "warning: spec.sidecarEgress[0].services[2]: service shop/missing does not exist (yet): it is sent once it does"
    ]
