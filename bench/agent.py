"""Agent benchmark: what the pod agent costs in every pod (memory and CPU), beside a real Envoy.

Runs the real agent (``python -m mesh_operator.agent run``) exactly as the sidecar container does, against the
control plane's identity service (mesh_operator.identity, HTTPS on 127.0.0.1; its API-server view is a stand-in
that vouches for one pod, since TokenReview latency is not the agent's cost). The agent gets its certificate
(key and CSR made by its short-lived child process), writes the bootstrap, starts Envoy and serves the health
port. There is no xDS server: Envoy idles with its bootstrap only (its RSS is a floor; real config adds to it).

Measured, after a settle time:

- agent RSS and USS (psutil), and its peak RSS (VmHWM) since start;
- the CSR child's peak RSS (the largest child the bench process has waited for, from getrusage);
- agent CPU over ``--seconds`` of idle work: a kubelet-like probe of ``/healthz/ready`` and one app probe every
  ``--probe-period`` s, and certificate renewals (certificates last ``--ttl`` s, so renewals fall in the window),
  as a percentage of one core, plus the number of renewals;
- Envoy's RSS (its own process), for the sidecar container's total.

    .venv/bin/python bench/agent.py                # 60 s window, 1 probe pair per 2 s, 30 s certificates
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import http.server
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web

from mesh_operator.identity import IdentityService, routes
from xds_server.ca import SpiffeId, TrustBundle, create_root
from xds_server.envoy_binary import envoy_path
from xds_server.ports import free_port

CONTROL_PLANE_ID = "spiffe://cluster.local/ns/meshwork-system/sa/meshwork-control-plane"


class OnePod:
    async def token_review(self, token: str, audiences: list[str]) -> Mapping[str, Any]:
        extra = {"authentication.kubernetes.io/pod-name": ["web-0"], "authentication.kubernetes.io/pod-uid": ["u1"]}
        return {
            "authenticated": token == "bench-token",
            "audiences": audiences,
            "user": {"username": "system:serviceaccount:shop:web", "extra": extra},
        }

    async def get_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return {"metadata": {"name": name, "uid": "u1"}, "spec": {"serviceAccountName": "web"}}


def serve_identity(work: Path, ttl: int) -> tuple[str, Path]:
    ca = create_root("cluster.local")
    service = IdentityService(
        OnePod(), lambda: ca, lambda: TrustBundle.of(ca.root).to_pem(), ttl=timedelta(seconds=ttl)
    )
    app = web.Application()
    app.add_routes(routes(service))
    server = ca.issue_keypair(SpiffeId.parse(CONTROL_PLANE_ID))
    (work / "server.pem").write_bytes(server.chain_pem)
    (work / "server.key").write_bytes(server.private_key_pem)
    (work / "ca.pem").write_bytes(TrustBundle.of(ca.root).to_pem())
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(work / "server.pem", work / "server.key")
    port = free_port()
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    async def start() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    return f"https://127.0.0.1:{port}/identity/v1/certificate", work / "ca.pem"


def app_server() -> int:
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return int(srv.server_address[1])


def get(port: int, path: str) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    except OSError:
        return 0
    finally:
        c.close()


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


CSR_PEAK = """
import sys
from pathlib import Path
from mesh_operator.agent.csr import make
make("spiffe://cluster.local/ns/a/sa/b", Path(sys.argv[1]))
print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""


def csr_child_peak_kb(key: Path) -> int:
    """Peak RSS of what the agent's CSR child does (``csr.make``), as VmHWM of the process doing it (per address
    space, so not inflated by this big bench process it was forked from, as getrusage would be)."""
    out = subprocess.run([sys.executable, "-c", CSR_PEAK, str(key)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def mib(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="idle measurement window")
    p.add_argument("--settle", type=float, default=5.0)
    p.add_argument("--probe-period", type=float, default=2.0)
    p.add_argument("--ttl", type=int, default=30, help="certificate lifetime in seconds (renewals at ~half)")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="meshwork-bench-agent-"))
    url, ca = serve_identity(work, args.ttl)
    app = app_server()
    (work / "token").write_text("bench-token")
    admin, health = free_port(), free_port()
    env = {
        **os.environ,
        "POD_NAME": "web-0",
        "POD_NAMESPACE": "shop",
        "SERVICE_ACCOUNT": "web",
        "MESHWORK_CONTROL_PLANE": f"127.0.0.1:{free_port()}",
        "MESHWORK_IDENTITY_URL": url,
        "MESHWORK_TOKEN": str(work / "token"),
        "MESHWORK_CA": str(ca),
        "MESHWORK_WORK_DIR": str(work / "proxy"),
        "MESHWORK_ADMIN_PORT": str(admin),
        "MESHWORK_HEALTH_PORT": str(health),
        "MESHWORK_CONCURRENCY": "2",
        "MESHWORK_DRAIN_SECONDS": "1",
        "MESHWORK_ENVOY": str(envoy_path()),
        "MESHWORK_APP_PROBES": json.dumps({"/app-health/app/readyz": {"httpGet": {"port": app, "path": "/"}}}),
    }
    agent = subprocess.Popen(
        [sys.executable, "-m", "mesh_operator.agent", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(work / "agent.log", "wb"),  # noqa: SIM115 - the process keeps it until it exits
    )
    try:
        deadline = time.monotonic() + 60
        while get(admin, "/server_info") != 200:
            if time.monotonic() > deadline or agent.poll() is not None:
                print((work / "agent.log").read_text()[-2000:], file=sys.stderr)
                return 1
            time.sleep(0.2)
        time.sleep(args.settle)
        proc = psutil.Process(agent.pid)
        (envoy,) = proc.children()
        certs = work / "proxy" / "creds" / "cert.pem"
        serial0 = certs.resolve().read_bytes()
        renewals = 0
        cpu0 = proc.cpu_times()
        t0 = time.monotonic()
        probes = 0
        while time.monotonic() - t0 < args.seconds:
            get(health, "/healthz/ready")
            get(health, "/app-health/app/readyz")
            probes += 2
            now = certs.resolve().read_bytes()
            if now != serial0:
                renewals += 1
                serial0 = now
            time.sleep(args.probe_period)
        elapsed = time.monotonic() - t0
        cpu1 = proc.cpu_times()
        mem = proc.memory_full_info()
        envoy_mem = envoy.memory_full_info()
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        child_peak_kb = csr_child_peak_kb(work / "bench-key.pem")
        print(f"agent (python {sys.version.split()[0]}), {elapsed:.0f} s window, {probes} probes, TTL {args.ttl} s")
        print(f"  agent RSS {mib(mem.rss)}, USS {mib(mem.uss)}, peak RSS {mib(vm_hwm_kb(agent.pid) * 1024)}")
        print(f"  CSR child peak RSS {mib(child_peak_kb * 1024)} (short-lived, once per renewal)")
        print(f"  agent CPU {cpu:.2f} s = {100 * cpu / elapsed:.2f} % of a core (renewals seen: {renewals})")
        print(f"  envoy RSS {mib(envoy_mem.rss)}, USS {mib(envoy_mem.uss)} (bootstrap only, no xDS config)")
        print(f"  sidecar container, agent + envoy RSS: {mib(mem.rss + envoy_mem.rss)}")
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=20)
        except subprocess.TimeoutExpired:
            agent.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
