"""The health port (plaintext, never captured): ``/healthz/ready`` (Envoy is LIVE) and the app's probes as the
injector rewrote them (``/app-health/<container>/<kind>``), each run against 127.0.0.1 exactly as kubelet would
have run it (loopback is never captured). Only the configured probes are run: the port is no open proxy."""

from __future__ import annotations

import http.client
import http.server
import socket
import ssl
import threading
from typing import Any


def envoy_ready(admin_port: int, timeout: float = 1.0) -> bool:
    c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=timeout)
    try:
        c.request("GET", "/ready")
        r = c.getresponse()
        r.read()
        return r.status == 200
    except OSError:
        return False
    finally:
        c.close()


def run_probe(probe: dict[str, Any]) -> tuple[bool, str]:
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            h = probe["httpGet"]
            if h.get("scheme", "HTTP") == "HTTPS":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE  # kubelet does not verify probe certificates either
                c: http.client.HTTPConnection = http.client.HTTPSConnection(
                    "127.0.0.1", h["port"], timeout=timeout, context=ctx
                )
            else:
                c = http.client.HTTPConnection("127.0.0.1", h["port"], timeout=timeout)
            headers = {x["name"]: x["value"] for x in h.get("httpHeaders") or []}
            try:
                c.request("GET", h.get("path", "/"), headers=headers)
                r = c.getresponse()
                r.read()
            finally:
                c.close()
            return 200 <= r.status < 400, f"HTTP {r.status}"
        if "tcpSocket" in probe:
            with socket.create_connection(("127.0.0.1", probe["tcpSocket"]["port"]), timeout=timeout):
                return True, "connected"
        if "grpc" in probe:
            from mesh_operator.agent.grpc_probe import check

            return check(probe["grpc"]["port"], probe["grpc"].get("service", ""), timeout)
    except OSError as err:
        return False, str(err)
    return False, "unknown probe"


class HealthServer:
    def __init__(self, port: int, admin_port: int, probes: dict[str, Any], host: str = "0.0.0.0") -> None:
        self.admin_port = admin_port
        self.probes = probes
        self.draining = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz/ready":
                    ok = not owner.draining.is_set() and envoy_ready(owner.admin_port)
                    detail = "draining" if owner.draining.is_set() else ("LIVE" if ok else "Envoy is not ready")
                elif self.path in owner.probes:
                    ok, detail = run_probe(owner.probes[self.path])
                else:
                    self.send_error(404)
                    return
                body = (detail + "\n").encode()
                self.send_response(200 if ok else 503)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
