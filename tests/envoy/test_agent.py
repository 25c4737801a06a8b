"""The pod agent's life with a real Envoy: certificate -> bootstrap -> Envoy -> renewal without a restart ->
probes on the health port -> drain on SIGTERM.

The identity service is the control plane's own (:mod:`mesh_operator.identity`) over HTTPS on 127.0.0.1; only its
view of the API server is a stand-in here (the real TokenReview path is the k8s tier's
``tests/k8s/test_pod_identity.py``). Certificates live 30 s, so the agent renews within the test.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp import web
from cryptography import x509

from mesh_operator.agent.bootstrap import bootstrap, sds_files
from mesh_operator.agent.config import AgentConfig
from mesh_operator.identity import IdentityService, routes
from xds_server.ca import SpiffeId, TrustBundle, create_root
from xds_server.envoy_binary import envoy_path, validate_config
from xds_server.ports import free_port

CONTROL_PLANE_ID = "spiffe://cluster.local/ns/meshwork-system/sa/meshwork-control-plane"
TOKEN = "token-of-web-0"


class OneCluster:
    """The API server's answers for one pod (shop/web-0, account web) and its token."""

    async def token_review(self, token: str, audiences: list[str]) -> Mapping[str, Any]:
        if token != TOKEN:
            return {"authenticated": False, "error": "invalid bearer token"}
        extra = {"authentication.kubernetes.io/pod-name": ["web-0"], "authentication.kubernetes.io/pod-uid": ["u1"]}
        return {
            "authenticated": True,
            "audiences": audiences,
            "user": {"username": "system:serviceaccount:shop:web", "extra": extra},
        }

    async def get_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return {"metadata": {"name": name, "uid": "u1"}, "spec": {"serviceAccountName": "web"}}


@pytest.fixture
def identity_url(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The identity service over HTTPS on 127.0.0.1, in its own thread and event loop (the test blocks)."""
    ca = create_root("cluster.local")
    service = IdentityService(
        OneCluster(), lambda: ca, lambda: TrustBundle.of(ca.root).to_pem(), ttl=timedelta(seconds=30)
    )
    app = web.Application()
    app.add_routes(routes(service))
    server = ca.issue_keypair(SpiffeId.parse(CONTROL_PLANE_ID))
    (tmp_path / "server.pem").write_bytes(server.chain_pem)
    (tmp_path / "server.key").write_bytes(server.private_key_pem)
    (tmp_path / "ca.pem").write_bytes(TrustBundle.of(ca.root).to_pem())
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield f"https://127.0.0.1:{port}/identity/v1/certificate", tmp_path / "ca.pem"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def app_port() -> Iterator[int]:
    """A plain HTTP app on loopback answering /ready with 200."""
    import http.server

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ready" else 500)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield int(srv.server_address[1])
    finally:
        srv.shutdown()
        srv.server_close()


def get(port: int, path: str) -> tuple[int, str]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    except OSError as err:
        return 0, str(err)
    finally:
        c.close()


def wait_for(cond: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def serial_in_use(admin_port: int) -> str:
    status, body = get(admin_port, "/certs")
    assert status == 200, body
    for entry in json.loads(body)["certificates"]:
        for cert in entry.get("cert_chain", []):
            return str(cert["serial_number"])
    return ""


def test_the_agent_runs_envoy_renews_without_restarting_it_serves_probes_and_drains(
    identity_url: tuple[str, Path], app_port: int, tmp_path: Path
) -> None:
    url, ca = identity_url
    (tmp_path / "token").write_text(TOKEN)
    admin, health, closed = free_port(), free_port(), free_port()
    probes = {
        "/app-health/app/readyz": {"httpGet": {"port": app_port, "path": "/ready", "scheme": "HTTP"}},
        "/app-health/app/livez": {"tcpSocket": {"port": closed}, "timeoutSeconds": 1},
    }
    env = {
        **os.environ,
        "POD_NAME": "web-0",
        "POD_NAMESPACE": "shop",
        "SERVICE_ACCOUNT": "web",
        "MESHWORK_CONTROL_PLANE": f"127.0.0.1:{free_port()}",  # no xDS server: Envoy keeps retrying
        "MESHWORK_IDENTITY_URL": url,
        "MESHWORK_TOKEN": str(tmp_path / "token"),
        "MESHWORK_CA": str(ca),
        "MESHWORK_WORK_DIR": str(tmp_path / "work"),
        "MESHWORK_ADMIN_PORT": str(admin),
        "MESHWORK_HEALTH_PORT": str(health),
        "MESHWORK_DRAIN_SECONDS": "2",
        "MESHWORK_CONCURRENCY": "1",
        "MESHWORK_ENVOY": str(envoy_path()),
        "MESHWORK_APP_PROBES": json.dumps(probes),
    }
    log = open(tmp_path / "agent.log", "wb")  # noqa: SIM115 - closed below
    agent = subprocess.Popen([sys.executable, "-m", "mesh_operator.agent", "run"], env=env, stdout=log, stderr=log)
    try:
        creds = tmp_path / "work" / "creds"
        wait_for(lambda: get(admin, "/server_info")[0] == 200, 60, "Envoy's admin")
        (envoy,) = psutil.Process(agent.pid).children()
        assert envoy.name().startswith("envoy")
        first = x509.load_pem_x509_certificate((creds / "cert.pem").read_bytes()).serial_number
        assert int(serial_in_use(admin), 16) == first
        assert (creds / "key.pem").stat().st_mode & 0o777 == 0o600

        # The rewritten probes: the HTTP one passes against the app on loopback, the TCP one (nothing there) fails.
        assert get(health, "/app-health/app/readyz")[0] == 200
        assert get(health, "/app-health/app/livez")[0] == 503
        assert get(health, "/app-health/other/livez")[0] == 404  # only configured probes: no open proxy

        # Renewal: a new certificate, loaded by the same Envoy process.
        renewed = wait_for(
            lambda: (
                (s := x509.load_pem_x509_certificate((creds / "cert.pem").read_bytes()).serial_number) != first and s
            ),
            60,
            "a renewed certificate",
        )
        wait_for(lambda: int(serial_in_use(admin) or "0", 16) == renewed, 30, "Envoy to load the renewed certificate")
        assert envoy.is_running() and psutil.Process(agent.pid).children()[0].pid == envoy.pid

        # SIGTERM: not ready any more, Envoy drained and stopped, the agent exits 0.
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
        assert not envoy.is_running()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", admin), timeout=1).close()
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(timeout=10)
        log.close()
        print((tmp_path / "agent.log").read_text()[-3000:])


def test_envoy_accepts_the_agents_bootstrap_and_its_sds_files(tmp_path: Path) -> None:
    cfg = AgentConfig(
        pod_name="web-0",
        namespace="shop",
        service_account="web",
        control_plane="meshwork.meshwork-system.svc:15012",
        identity_url="https://x/identity/v1/certificate",
        token_path=tmp_path / "t",
        ca_path=tmp_path / "ca",
        work_dir=tmp_path / "w",
    )
    ca = create_root("cluster.local")
    leaf = ca.issue_keypair(SpiffeId.parse(cfg.spiffe_id))
    cfg.creds_dir.mkdir(parents=True)
    (cfg.creds_dir / "cert.pem").write_bytes(leaf.chain_pem)
    (cfg.creds_dir / "key.pem").write_bytes(leaf.private_key_pem)
    (cfg.creds_dir / "ca.pem").write_bytes(TrustBundle.of(ca.root).to_pem())
    for path, doc in sds_files(cfg).items():
        Path(path).write_text(json.dumps(doc))
    (tmp_path / "envoy.json").write_text(json.dumps(bootstrap(cfg)))
    result = validate_config(tmp_path / "envoy.json")
    assert result.ok, result


INVENTORY = """\
apiVersion: meshwork.io/v1alpha1
kind: Inventory
metadata: {name: shop}
spec:
  clients:
    - {name: web-0, namespace: shop, serviceAccount: web}
"""


def test_the_agents_certificate_opens_the_real_xds_stream_and_the_sidecar_becomes_ready(tmp_path: Path) -> None:
    """End to end on 127.0.0.1: the control plane (mTLS-only xDS, node served only to its identity) and the
    identity service share the mesh CA; the agent's certificate is what lets its Envoy in."""
    from mesh_operator.control.certs import CertificateManager
    from mesh_operator.control.plane import ControlPlane
    from mesh_operator.loader import load_text

    certs = CertificateManager(create_root("cluster.local"), leaf_ttl=timedelta(hours=1))
    plane = ControlPlane(certs, xds_port=free_port(), admin_port=free_port())
    service = IdentityService(OneCluster(), lambda: certs.issuer, lambda: certs.bundle.to_pem())
    app = web.Application()
    app.add_routes(routes(service))
    server = certs.issuer.issue_keypair(certs.control_plane_identity())
    (tmp_path / "server.pem").write_bytes(server.chain_pem)
    (tmp_path / "server.key").write_bytes(server.private_key_pem)
    (tmp_path / "ca.pem").write_bytes(certs.bundle.to_pem())
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    identity_port = free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(app, access_log=None)

    async def start() -> None:
        await plane.start()
        plane.apply(load_text(INVENTORY, "inventory.yaml").state())
        await plane.wait_translated()
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", identity_port, ssl_context=ctx).start()

    async def stop() -> None:
        await runner.cleanup()
        await plane.stop()

    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    (tmp_path / "token").write_text(TOKEN)
    admin, health = free_port(), free_port()
    env = {
        **os.environ,
        "POD_NAME": "web-0",
        "POD_NAMESPACE": "shop",
        "SERVICE_ACCOUNT": "web",
        "MESHWORK_CONTROL_PLANE": f"127.0.0.1:{plane.xds_port}",
        "MESHWORK_IDENTITY_URL": f"https://127.0.0.1:{identity_port}/identity/v1/certificate",
        "MESHWORK_CONTROL_PLANE_ID": str(certs.control_plane_identity()),
        "MESHWORK_TOKEN": str(tmp_path / "token"),
        "MESHWORK_CA": str(tmp_path / "ca.pem"),
        "MESHWORK_WORK_DIR": str(tmp_path / "work"),
        "MESHWORK_ADMIN_PORT": str(admin),
        "MESHWORK_HEALTH_PORT": str(health),
        "MESHWORK_DRAIN_SECONDS": "1",
        "MESHWORK_CONCURRENCY": "1",
        "MESHWORK_ENVOY": str(envoy_path()),
    }
    agent = subprocess.Popen([sys.executable, "-m", "mesh_operator.agent", "run"], env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: get(health, "/healthz/ready")[0] == 200, 60, "the sidecar to become ready")
        # Connected over mTLS with the agent's certificate, and the server's CDS and LDS were accepted (the server
        # serves a node only to a peer of that node's identity).
        _, body = get(admin, "/stats?filter=(control_plane.connected_state|cds.update_success|lds.update_success)$")
        stats = dict(line.split(": ") for line in body.splitlines())
        assert stats["control_plane.connected_state"] == "1", body
        assert int(stats["cluster_manager.cds.update_success"]) >= 1, body
        assert int(stats["listener_manager.lds.update_success"]) >= 1, body
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(timeout=10)
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
