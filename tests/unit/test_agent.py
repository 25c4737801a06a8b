"""The agent's contract with the injector (the env it reads is the env injected) and its probes, against real
servers on loopback (HTTP, TCP, gRPC health)."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpclib.health.service import Health
from grpclib.server import Server

from mesh_operator.agent.config import AgentConfig, ConfigError
from mesh_operator.agent.health import run_probe
from mesh_operator.agent.run import renew_delay
from mesh_operator.inject import InjectionSettings, inject_pod
from mesh_operator.inject.pod import Injected
from xds_server.ports import free_port

POD = {
    "metadata": {"name": "web-0", "namespace": "shop", "annotations": {"meshwork.io/inject": "true"}},
    "spec": {
        "serviceAccountName": "web",
        "containers": [
            {
                "name": "app",
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "timeoutSeconds": 2},
            }
        ],
    },
}


def injected_env() -> dict[str, str]:
    result = inject_pod(POD, InjectionSettings())
    assert isinstance(result, Injected)
    proxy = next(c for c in result.pod["spec"]["initContainers"] if c["name"] == "meshwork-proxy")
    fields = {
        "metadata.name": "web-0",
        "metadata.namespace": "shop",
        "metadata.uid": "u1",
        "status.podIP": "10.244.0.9",
        "spec.serviceAccountName": "web",
    }
    return {
        e["name"]: e["value"] if "value" in e else fields[e["valueFrom"]["fieldRef"]["fieldPath"]] for e in proxy["env"]
    }


def test_the_agent_reads_exactly_what_the_injector_writes() -> None:
    cfg = AgentConfig.from_env(injected_env())
    s = InjectionSettings()
    assert (cfg.pod_name, cfg.namespace, cfg.service_account) == ("web-0", "shop", "web")
    assert cfg.spiffe_id == "spiffe://cluster.local/ns/shop/sa/web"
    assert (cfg.control_plane, cfg.identity_url, cfg.control_plane_id) == (
        s.control_plane,
        s.identity_url,
        s.control_plane_id,
    )
    assert (cfg.admin_port, cfg.health_port, cfg.drain_seconds) == (s.admin_port, s.health_port, s.drain_seconds)
    assert cfg.app_probes == {
        "/app-health/app/readyz": {
            "httpGet": {"port": 8080, "path": "/ready", "scheme": "HTTP"},
            "timeoutSeconds": 2,
        }
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"POD_NAME": ""}, "POD_NAME is not set"),
        ({"MESHWORK_HEALTH_PORT": "x"}, "MESHWORK_HEALTH_PORT='x' is not a whole number"),
        ({"MESHWORK_APP_PROBES": "{"}, "MESHWORK_APP_PROBES is not JSON"),
    ],
)
def test_bad_environment_is_a_clear_error(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AgentConfig.from_env({**injected_env(), **change})


@pytest.fixture
def http_app() -> Iterator[int]:
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/ready" and self.headers.get("x-probe") in (None, "kubelet")
            self.send_response(200 if ok else 500)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield int(srv.server_address[1])
    finally:
        srv.shutdown()
        srv.server_close()


def test_http_and_tcp_probes_run_against_loopback(http_app: int) -> None:
    assert run_probe({"httpGet": {"port": http_app, "path": "/ready"}}) == (True, "HTTP 200")
    assert run_probe({"httpGet": {"port": http_app, "path": "/broken"}}) == (False, "HTTP 500")
    headers = [{"name": "x-probe", "value": "other"}]
    assert run_probe({"httpGet": {"port": http_app, "path": "/ready", "httpHeaders": headers}})[0] is False
    assert run_probe({"tcpSocket": {"port": http_app}}) == (True, "connected")
    assert run_probe({"tcpSocket": {"port": free_port()}})[0] is False


@pytest.fixture
def grpc_app() -> Iterator[tuple[int, Health]]:
    """A grpclib server with the standard health service on loopback, in its own thread and loop."""
    health = Health()
    port = free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> Server:
        server = Server([health])
        await server.start("127.0.0.1", port)
        return server

    async def stop(server: Server) -> None:
        server.close()
        await server.wait_closed()

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield port, health
    finally:
        asyncio.run_coroutine_threadsafe(stop(server), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def test_a_grpc_probe_asks_the_apps_grpc_health_service(grpc_app: tuple[int, Health]) -> None:
    port, _ = grpc_app
    assert run_probe({"grpc": {"port": port}, "timeoutSeconds": 2}) == (True, "SERVING")
    ok, detail = run_probe({"grpc": {"port": port, "service": "shop.Cart"}, "timeoutSeconds": 2})
    assert ok is False and "NOT_FOUND" in detail
    assert run_probe({"grpc": {"port": free_port()}, "timeoutSeconds": 1})[0] is False


def test_renewal_comes_at_about_half_the_remaining_life() -> None:
    import random
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 12, 1, tzinfo=UTC)
    delays = [renew_delay(now + timedelta(hours=24), now, random.Random(i)) for i in range(50)]
    assert all(0.9 * 12 * 3600 <= d <= 1.1 * 12 * 3600 for d in delays)
    assert len(set(delays)) > 1  # jittered
    assert renew_delay(now - timedelta(seconds=5), now) == 1.0  # expired: renew now (bounded retry)


def test_the_csr_child_writes_an_owner_only_key(tmp_path: Path) -> None:
    from cryptography import x509

    from mesh_operator.agent.csr import in_child

    pem = in_child("spiffe://cluster.local/ns/shop/sa/web", tmp_path / "key.pem")
    csr = x509.load_pem_x509_csr(pem.encode())
    sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://cluster.local/ns/shop/sa/web"]
    assert (tmp_path / "key.pem").stat().st_mode & 0o777 == 0o600
    assert json.dumps(pem).count("PRIVATE") == 0
