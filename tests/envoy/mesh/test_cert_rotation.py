"""Certificates under traffic: workload leaves rotate and a staged root rotation completes without a failed
request (TCP services, so every request is a fresh mTLS handshake between sidecars); an expired leaf fails closed;
``meshctl certs`` and ``/debug/certz`` show serials, issuers, expiry and root warnings."""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mesh_operator.control import CertificateManager, ControlPlane
from mesh_operator.control.rotation import certz
from mesh_operator.testing import localmesh
from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh
from xds_server.ca import SpiffeId, create_root, store

REFUSED = (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)


def served_cert(m: RunningMesh, workload: str) -> dict[str, str]:
    """The workload certificate the sidecar presents in the mesh (SDS from the control plane; the other one in the
    admin ``/certs`` is its xDS client certificate, on disk): serial and expiration time."""
    certs = json.loads(m.sidecar_admin(workload, "/certs"))["certificates"]
    xds_client = _on_disk_serial(m, workload)
    chains = [c["cert_chain"][0] for c in certs if c.get("cert_chain")]
    served = [c for c in chains if int(c["serial_number"], 16) != xds_client]
    assert served, certs
    first: dict[str, str] = served[0]
    return first


def _on_disk_serial(m: RunningMesh, workload: str) -> int:
    from cryptography import x509

    (creds,) = (m.builder.state_dir / "proxies").glob(f"*{workload}/creds")
    return int(x509.load_pem_x509_certificate((creds / "cert.pem").read_bytes()).serial_number)


def direct_get(m: RunningMesh, workload: str, *, tls: bool) -> int:
    """GET / straight to a sidecar's inbound port: plaintext, or mTLS with a fresh certificate of the mesh CA
    that also verifies the sidecar's certificate (chain and validity)."""
    port = m.builder.workloads[workload].inbound_port
    assert port is not None
    conn: http.client.HTTPConnection
    if tls:
        issuer = store.load_issuer(m.builder.state_dir / "ca" / "test.local", "test.local")
        keypair = issuer.issue_keypair(SpiffeId.parse("spiffe://test.local/ns/default/sa/caller"))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # a SPIFFE URI SAN, no DNS name
        ctx.load_verify_locations(cadata=issuer.certificate_pem.decode())
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "c.pem").write_bytes(keypair.chain_pem)
            (Path(d) / "k.pem").write_bytes(keypair.private_key_pem)
            ctx.load_cert_chain(Path(d) / "c.pem", Path(d) / "k.pem")
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status
    finally:
        conn.close()


@contextmanager
def continuous_traffic(m: RunningMesh, caller: str, service: str) -> Iterator[Counter[int]]:
    """GETs back to back from another thread until the block ends; yields the status counts (0: no answer)."""
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                statuses[m.get(caller, service, "/", timeout=5).status] += 1
            except OSError:
                statuses[0] += 1
            time.sleep(0.02)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        thread.join(timeout=10)


def test_three_rotations_under_continuous_traffic_fail_no_request(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend", protocol="TCP")  # TCP: every request is a new mTLS handshake between the sidecars
    mesh.client("caller", upstreams=["backend"])
    mesh.mesh(certificates={"workloadTtl": "30s"})
    with mesh.run() as m:
        handshakes = _handshakes(m)
        serials = [served_cert(m, "backend-1")["serial_number"]]
        with continuous_traffic(m, "caller", "backend") as statuses:
            deadline = time.monotonic() + 90  # renewal at 15 s +- 3 s: three rotations take ~45-55 s
            while len(serials) < 4 and time.monotonic() < deadline:
                time.sleep(0.5)
                serial = served_cert(m, "backend-1")["serial_number"]
                if serial != serials[-1]:
                    serials.append(serial)
        assert len(serials) >= 4, serials
        assert set(statuses) == {200} and statuses[200] > 100, statuses
        assert _handshakes(m) - handshakes >= statuses[200]  # each request a new handshake, across rotations


def test_an_expired_leaf_fails_closed_when_the_control_plane_is_gone(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    mesh.mesh(certificates={"workloadTtl": "10s"})
    with mesh.run() as m:
        assert direct_get(m, "backend-1", tls=True) == 200  # control: the direct mTLS client works
        m.kill_control_plane()
        expires = datetime.fromisoformat(served_cert(m, "backend-1")["expiration_time"].replace("Z", "+00:00"))
        time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 1.5)
        # The caller's sidecar cannot complete a handshake with an expired peer (and its own leaf expired too).
        assert m.get("caller", "backend", "/").status == 503
        # A client with a valid mesh certificate is refused the expired server certificate; plaintext stays refused.
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"):
            direct_get(m, "backend-1", tls=True)
        with pytest.raises(REFUSED):
            direct_get(m, "backend-1", tls=False)


def test_a_staged_root_rotation_under_continuous_traffic_fails_no_request(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend", protocol="TCP")  # TCP: every request is a new mTLS handshake between the sidecars
    mesh.client("caller", upstreams=["backend"])
    with mesh.run() as m:
        admin = f"http://127.0.0.1:{m.admin_port}"
        old_root = m.admin("/debug/certz")["roots"][0]["serial"]
        swap = localmesh.http(f"{admin}/debug/rotate-root?step=remove-old-root", method="POST")
        assert swap.status == 409 and "one-step root swap" in swap.json()["error"]
        handshakes = _handshakes(m)
        with continuous_traffic(m, "caller", "backend") as statuses:
            cli = _meshctl("certs", "rotate", "--root", "--admin", admin)
        assert cli.returncode == 0, cli.stdout + cli.stderr
        steps = [line.split()[1].rstrip(":") for line in cli.stdout.splitlines() if line.startswith("step ")]
        assert steps == ["add-new-root", "switch-issuer", "reissue-leaves", "remove-old-root"], cli.stdout
        assert set(statuses) == {200} and statuses[200] > 20, statuses
        assert _handshakes(m) - handshakes >= statuses[200]
        certz = m.admin("/debug/certz")
        [new_root] = certz["roots"]
        assert new_root["serial"] != old_root
        assert {c["issuer"] for c in certz["identities"].values()} == {new_root["subject"]}
        served = int(served_cert(m, "backend-1")["serial_number"], 16)
        assert served in {int(c["serial"], 16) for c in certz["identities"].values()}


def _handshakes(m: RunningMesh) -> int:
    """TLS handshakes completed by the sidecar's listeners (inbound mTLS), not by its xDS client."""
    stats = m.stats("backend-1", "ssl.handshake")
    return sum(v for k, v in stats.items() if k.startswith("listener.") and k.endswith("ssl.handshake"))


def test_meshctl_certs_status_lists_identities_and_roots_and_rotate_identity_reissues_one(
    mesh: LocalMeshBuilder,
) -> None:
    mesh.service("backend")
    mesh.client("caller", upstreams=["backend"])
    with mesh.run() as m:
        admin = f"http://127.0.0.1:{m.admin_port}"
        before = served_cert(m, "backend-1")["serial_number"]
        rotate = _meshctl("certs", "rotate", "--identity", "default/backend", "--admin", admin)
        assert rotate.returncode == 0 and "every proxy (1) has the new certificate" in rotate.stdout, rotate
        assert served_cert(m, "backend-1")["serial_number"] != before
        status = _meshctl("certs", "status", "--admin", admin)
        assert status.returncode == 0, status
        kinds = [line.split()[0] for line in status.stdout.splitlines()[1:]]
        assert sorted(kinds) == ["identity", "identity", "issuer", "root"], status.stdout


def _meshctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meshctl", *args], capture_output=True, text=True, timeout=60)


async def test_certz_warns_when_a_root_has_less_than_60_days_left() -> None:
    plane = ControlPlane(
        CertificateManager(create_root("test.local", ttl=timedelta(days=59)), leaf_ttl=timedelta(hours=1))
    )
    [warning] = certz(plane, plane.rotator)["warnings"]
    assert "under 60 days" in warning and "start a staged root rotation" in warning


def xds_client_cert(m: RunningMesh, workload: str) -> str:
    """The serial of the xDS client certificate on disk, once the sidecar's Envoy has loaded it ("" before)."""
    on_disk = _on_disk_serial(m, workload)
    certs = json.loads(m.sidecar_admin(workload, "/certs"))["certificates"]
    loaded = {int(c["cert_chain"][0]["serial_number"], 16) for c in certs if c.get("cert_chain")}
    return f"{on_disk:x}" if on_disk in loaded else ""


def uptime(m: RunningMesh, workload: str) -> int:
    return int(json.loads(m.sidecar_admin(workload, "/server_info"))["uptime_all_epochs"].rstrip("s"))


def test_the_xds_client_certificate_is_renewed_in_the_running_envoy(mesh: LocalMeshBuilder) -> None:
    mesh.service("backend")
    mesh.mesh(certificates={"workloadTtl": "10s"})
    with mesh.run() as m:
        first = xds_client_cert(m, "backend-1")
        assert first, "Envoy does not use the xDS client certificate on disk"
        started = uptime(m, "backend-1")
        deadline = time.monotonic() + 30  # renewal at half of 10 s
        while xds_client_cert(m, "backend-1") in (first, "") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert xds_client_cert(m, "backend-1") not in (first, ""), "Envoy did not load the renewed certificate"
        assert uptime(m, "backend-1") >= started  # the same Envoy, not a restarted one
        m.wait_converged()
