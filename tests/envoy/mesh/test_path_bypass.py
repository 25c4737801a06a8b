"""The path/host bypass corpus (CVE-2021-31920, CVE-2021-39155/39156, CVE-2020-8595): a DENY rule on ``/admin``
holds against every spelling of the path and the host, sent byte for byte through the caller's sidecar.

Pass: every request is denied (403) or rejected before the app (400/404, or a redirect to the canonical path
whose follow-up is denied), and the protected app's inbound log shows it never served a path naming admin. The
corpus is sent a second time straight to the backend's inbound port with a valid mesh certificate: the
authorization boundary must hold without the caller's sidecar normalizing first.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from pathlib import Path

from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh
from xds_server.ca import SpiffeId, store

DENY_ADMIN = """
apiVersion: meshwork.io/v1alpha1
kind: AccessPolicy
metadata: {name: no-admin}
spec:
  targetRef: {name: backend}
  rules:
    - name: no-admin
      action: Deny
      to: [{paths: [{type: PathPrefix, value: /admin}], caseInsensitive: true}]
"""

PATHS = [
    "/admin",
    "//admin",
    "///admin",
    "/./admin",
    "/././admin",
    "/.//admin",
    "//./admin",
    "/x/../admin",
    "/x/./../admin",
    "/x/..//admin",
    "/x/y/../../admin",
    "/admin/../admin",
    "/%2e/admin",
    "/%2E/admin",
    "/x/%2e%2e/admin",
    "/x/%2E%2E/admin",
    "/x/.%2e/admin",
    "/x/%2e./admin",
    "/%2e%2e/admin",
    "/%2Fadmin",
    "/%2fadmin",
    "/x%2F..%2Fadmin",
    "/%5Cadmin",
    "/%5cadmin",
    "/x%5C..%5Cadmin",
    "/%61dmin",
    "/%61%64%6d%69%6e",
    "/ad%6Din",
    "/admin#x",
    "/admin?x",
    "/admin?x=1#y",
    "/ADMIN",
    "/Admin",
    "/aDmIn/users",
    "/%41DMIN",
    "/admin/",
    "/admin/users",
    "/admin;x",
    "/admin;x/users",
    "/admin%3Bx",
    "/admin%20",
    "/admin%09",
    "/admin%00",
    "/admin.",
    "/admin%2F",
    "/admin%2e",
]
HOSTS = ["BACKEND", "Backend", "backend:80", "backend:8080", "BACKEND:80", "backend.", "backend.default", "127.0.0.1"]
#: Whole request lines: tab and space variants, absolute form.
REQUEST_LINES = [
    "GET  /admin HTTP/1.1",
    "GET /admin  HTTP/1.1",
    "GET\t/admin HTTP/1.1",
    "GET /admin\tHTTP/1.1",
    "GET /admin HTTP/1.1 ",
    "GET http://backend/admin HTTP/1.1",
    "GET http://backend//admin HTTP/1.1",
    "GET HTTP://BACKEND:80/%2e/admin HTTP/1.1",
    "GET /\tadmin HTTP/1.1",
    "GET / admin HTTP/1.1",
]


def _raw(port: int, request_line: str, host: str = "backend", tls: ssl.SSLContext | None = None) -> tuple[int, str]:
    """Send exactly these bytes; return the status and the Location header."""
    data = f"{request_line}\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("latin-1")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        tls.wrap_socket(raw) if tls is not None else raw as s,
    ):
        s.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received and (chunk := s.recv(65536)):  # the head is all we need
            received += chunk
    head = received.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status = int(head.split(" ", 2)[1])
    location = re.search(r"(?im)^location:\s*(\S+)", head)
    return status, location.group(1) if location else ""


def _outcome(port: int, request_line: str, host: str = "backend", tls: ssl.SSLContext | None = None) -> int:
    """The final status; a redirect (outbound unescaping) is followed once, as a client would."""
    status, location = _raw(port, request_line, host, tls)
    if 300 <= status < 400 and location:
        path = re.sub(r"^https?://[^/]+", "", location)
        status, _ = _raw(port, f"GET {path} HTTP/1.1", host, tls)
    return status


def _mesh_client_tls(m: RunningMesh, tmp: Path) -> ssl.SSLContext:
    """A client holding a valid mesh certificate of identity ``caller``: it can skip the caller's sidecar."""
    issuer = store.load_issuer(m.builder.state_dir / "ca" / "test.local", "test.local")
    keypair = issuer.issue_keypair(SpiffeId.parse("spiffe://test.local/ns/default/sa/caller"))
    (tmp / "c.pem").write_bytes(keypair.chain_pem)
    (tmp / "k.pem").write_bytes(keypair.private_key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    return ctx


def _served_paths(m: RunningMesh, sentinel: str) -> list[str]:
    """Paths the backend's sidecar forwarded to the app (an upstream host is set), once ``sentinel`` is logged."""
    deadline = time.monotonic() + 20  # Envoy flushes access logs every ~10 s
    while time.monotonic() < deadline:
        lines = m.access_log("backend-1")
        if any(f"path={sentinel} " in line for line in lines):
            return [
                re.search(r" path=(.*?) protocol=", line).group(1)  # type: ignore[union-attr]
                for line in lines
                if not re.search(r" upstream_host=- ", line)
            ]
        time.sleep(0.25)
    raise AssertionError(f"{sentinel} never reached the backend's access log")


def test_every_spelling_of_a_denied_path_or_host_is_refused(mesh: LocalMeshBuilder, tmp_path: Path) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(DENY_ADMIN)
    corpus = [(f"GET {p} HTTP/1.1", "backend") for p in PATHS]
    corpus += [("GET /admin HTTP/1.1", h) for h in HOSTS] + [(line, "backend") for line in REQUEST_LINES]
    assert len(corpus) >= 40
    with mesh.run() as m:
        port = m.builder.workloads["caller"].upstream_ports["backend"]
        assert _outcome(port, "GET /public HTTP/1.1") == 200  # control: the route works
        outcomes = {(line, host): _outcome(port, line, host) for line, host in corpus}
        allowed = {k: v for k, v in outcomes.items() if v not in (400, 403, 404)}
        assert allowed == {}, allowed
        # The same bytes straight to the backend's inbound port, past the caller's sidecar (a compromised caller).
        inbound, tls = m.builder.workloads["backend-1"].inbound_port, _mesh_client_tls(m, tmp_path)
        assert inbound is not None and _outcome(inbound, "GET /public HTTP/1.1", tls=tls) == 200
        direct = {(line, host): _outcome(inbound, line, host, tls) for line, host in corpus}
        allowed = {k: v for k, v in direct.items() if v not in (400, 403, 404)}
        assert allowed == {}, allowed
        assert _outcome(port, "GET /sentinel HTTP/1.1") == 200
        served = _served_paths(m, "/sentinel")
        assert sorted(set(served)) == ["/public", "/sentinel"], served
