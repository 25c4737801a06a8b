"""The agent's life: certificate -> bootstrap -> Envoy -> renew (no Envoy restart) -> drain on SIGTERM."""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from mesh_operator.agent import csr
from mesh_operator.agent.bootstrap import bootstrap, sds_files
from mesh_operator.agent.client import Certificate, Refused, request_certificate
from mesh_operator.agent.config import AgentConfig
from mesh_operator.agent.creds import new_generation, publish
from mesh_operator.agent.health import HealthServer
from mesh_operator.files import atomic_write

log = logging.getLogger("meshwork.agent")


def renew_delay(not_after: datetime, now: datetime, rng: random.Random | None = None) -> float:
    """Seconds until renewal: about half the remaining life, jittered by ±10 %, at least 1 s."""
    remaining = (not_after - now).total_seconds()
    jitter = (rng or random).uniform(0.9, 1.1)
    return max(1.0, remaining / 2 * jitter)


class Agent:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.stop = threading.Event()
        self.envoy: subprocess.Popen[bytes] | None = None
        self.health: HealthServer | None = None
        self.certificate: Certificate | None = None
        self.renewals = 0
        self.generation = 0

    # -- certificate ------------------------------------------------------------------------------------------
    def obtain(self) -> Certificate:
        """One certificate for this pod, published where Envoy reads (and watches) it.

        The new key, certificate and bundle are written into a new generation and swapped in at once
        (``mesh_operator.agent.creds``)."""
        creds = self.cfg.creds_dir
        token = self.cfg.token_path.read_text().strip()
        self.generation += 1
        gen = new_generation(creds, f"{os.getpid()}-{self.generation}")
        next_key = gen / "key.pem"
        request = csr.in_child(self.cfg.spiffe_id, next_key)
        # The first request trusts the mounted bundle; renewals trust the bundle the control plane sent last.
        ca = creds / "ca.pem" if (creds / "ca.pem").exists() else self.cfg.ca_path
        cert = request_certificate(
            self.cfg.identity_url,
            ca,
            token,
            request,
            self.cfg.namespace,
            self.cfg.pod_name,
            self.cfg.control_plane_id,
        )
        if cert.identity != self.cfg.spiffe_id:
            raise Refused(200, f"the control plane signed {cert.identity}, expected {self.cfg.spiffe_id}")
        atomic_write(gen / "ca.pem", cert.trust_bundle_pem.encode(), 0o644)
        atomic_write(gen / "cert.pem", cert.chain_pem.encode(), 0o600)
        publish(creds, gen)
        self.certificate = cert
        log.info("certificate for %s valid until %s", cert.identity, cert.not_after)
        return cert

    def obtain_with_retries(self, deadline: float) -> Certificate:
        """Retry (bounded by ``deadline``, a monotonic time) while the control plane is unreachable; a refusal is
        final."""
        delay = 0.5
        while True:
            try:
                return self.obtain()
            except Refused:
                raise
            except OSError as err:
                if time.monotonic() + delay > deadline or self.stop.is_set():
                    raise
                log.warning("control plane unreachable (%s); retrying in %.1fs", err, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, 10.0)

    # -- Envoy ------------------------------------------------------------------------------------------------
    def write_bootstrap(self) -> Path:
        for sds_path, doc in sds_files(self.cfg).items():
            atomic_write(sds_path, json.dumps(doc).encode(), 0o600)
        path = self.cfg.work_dir / "envoy.json"
        atomic_write(path, json.dumps(bootstrap(self.cfg), indent=1).encode(), 0o600)
        return path

    def envoy_argv(self, bootstrap_path: Path) -> list[str]:
        return [
            self.cfg.envoy,
            "-c",
            str(bootstrap_path),
            "--disable-hot-restart",
            "--log-level",
            self.cfg.log_level,
            "--concurrency",
            str(self.cfg.concurrency),
            "--drain-time-s",
            str(self.cfg.drain_seconds),
        ]

    def drain(self) -> int | None:
        """Stop taking new work, let Envoy drain its listeners for ``drain_seconds``, then stop it."""
        if self.health is not None:
            self.health.draining.set()
        envoy = self.envoy
        if envoy is None or envoy.poll() is not None:
            return envoy.returncode if envoy else None
        c = http.client.HTTPConnection("127.0.0.1", self.cfg.admin_port, timeout=2)
        try:
            c.request("POST", "/drain_listeners?graceful")
            c.getresponse().read()
        except OSError as err:
            log.warning("could not ask Envoy to drain: %s", err)
        finally:
            c.close()
        try:
            return envoy.wait(timeout=self.cfg.drain_seconds)
        except subprocess.TimeoutExpired:
            pass
        envoy.terminate()
        try:
            return envoy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            envoy.kill()
            return envoy.wait(timeout=10)

    # -- the whole life -------------------------------------------------------------------------------------------
    def run(self, startup_timeout: float = 120.0) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        self.cfg.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            cert = self.obtain_with_retries(time.monotonic() + startup_timeout)
        except (Refused, OSError, RuntimeError) as err:
            log.error("no certificate: %s", err)
            return 1
        self.health = HealthServer(self.cfg.health_port, self.cfg.admin_port, self.cfg.app_probes).start()
        self.envoy = subprocess.Popen(self.envoy_argv(self.write_bootstrap()))
        renew_at = time.monotonic() + renew_delay(datetime.fromisoformat(cert.not_after), datetime.now(UTC))
        try:
            while not self.stop.is_set():
                if self.envoy.poll() is not None:
                    log.error("Envoy exited with %s", self.envoy.returncode)
                    return self.envoy.returncode or 1
                if time.monotonic() >= renew_at:
                    renew_at = self._renew(renew_at)
                self.stop.wait(min(1.0, max(0.0, renew_at - time.monotonic())))
        finally:
            self.drain()
            self.health.stop()
        return 0

    def _renew(self, previous: float) -> float:
        try:
            cert = self.obtain()
        except (Refused, OSError, RuntimeError) as err:
            log.warning("renewal failed (%s); retrying in 5s", err)
            return time.monotonic() + 5.0
        self.renewals += 1
        return time.monotonic() + renew_delay(datetime.fromisoformat(cert.not_after), datetime.now(UTC))


def wait_ready(health_port: int, timeout: float) -> bool:
    """``postStart`` of a classic sidecar: block until the sidecar is ready (kubelet then starts the app)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = http.client.HTTPConnection("127.0.0.1", health_port, timeout=1)
        try:
            c.request("GET", "/healthz/ready")
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return True
        except OSError:
            pass
        finally:
            c.close()
        time.sleep(0.5)
    return False
