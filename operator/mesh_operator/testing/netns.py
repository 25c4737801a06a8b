"""Network namespaces for tests: pods without a cluster (needs root, ``ip`` from iproute2, iptables).

:class:`NetnsLab` creates namespaces joined by a bridge in a namespace of its own, gives each the address the
test chooses, runs processes inside them (optionally as another UID, as a sidecar runs), and removes every
namespace and process on exit — also when the test fails. Nothing is created in the host's own namespace: the
bridge, the veth pairs and every address live only in the lab's namespaces, so no packet of a test can leave
them (NETWORK SAFETY). Use addresses from 10.250.0.0/16 only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Final

#: The only block a lab hands out (tests choose addresses inside it).
LAB_NETWORK: Final = ipaddress.IPv4Network("10.250.0.0/16")

#: An HTTP echo server: answers every GET with JSON naming the server, the path and the request headers.
ECHO_SERVER: Final = r"""
import http.server, json, sys
name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"server": name, "path": self.path, "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer((host, port), H).serve_forever()
"""

#: One bounded HTTP GET; prints ``{"status", "body"}`` or ``{"error"}`` as JSON.
HTTP_CLIENT: Final = r"""
import http.client, json, sys
host, port, path, header_host, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
extra = json.loads(sys.argv[6])
try:
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = dict(extra)
    if header_host:
        headers["Host"] = header_host
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    print(json.dumps({"status": r.status, "body": r.read().decode("utf-8", "replace")}))
except Exception as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
"""

#: Drop to a UID/GID, then exec: how a sidecar runs as the proxy user inside a namespace.
AS_USER: Final = r"""
import os, sys
uid, gid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
os.execv(sys.argv[3], sys.argv[3:])
"""


def missing_tools() -> str | None:
    """Why a lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables-restore", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make capture-tools)"
    return None


def _run(*args: str, input: str | None = None, timeout: float = 20.0) -> str:
    done = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


class NetnsLab:
    """Namespaces on one bridge. ``with NetnsLab() as lab: lab.add("client", "10.250.0.1/24") ...``"""

    def __init__(self, prefix: str = "mw") -> None:
        self.id = uuid.uuid4().hex[:6]
        self.prefix = f"{prefix}{self.id}"
        self.router = f"{self.prefix}-r"
        self.namespaces: dict[str, str] = {}
        self.processes: list[subprocess.Popen[bytes]] = []
        self._created: list[str] = []
        self._programs: dict[str, str] = {}  # program -> its copy every user may run
        self._bin: str | None = None

    def __enter__(self) -> NetnsLab:
        reason = missing_tools()
        if reason:
            raise RuntimeError(reason)
        self._netns_add(self.router)
        self.ip(self.router, "link", "add", "br0", "type", "bridge")
        self.ip(self.router, "link", "set", "br0", "up")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for p in reversed(self.processes):
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 5
        for p in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
        for ns in reversed(self._created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False, timeout=20)
        self._created.clear()
        if self._bin is not None:
            shutil.rmtree(self._bin, ignore_errors=True)
            self._bin, self._programs = None, {}

    def _netns_add(self, ns: str) -> None:
        _run("ip", "netns", "add", ns)
        self._created.append(ns)
        self.ip(ns, "link", "set", "lo", "up")

    def ip(self, ns: str, *args: str) -> str:
        return _run("ip", "-n", ns, *args)

    def add(self, name: str, cidr: str) -> str:
        """A namespace ``name`` with ``eth0`` on the bridge at ``cidr`` (inside 10.250.0.0/16); its netns name."""
        iface = ipaddress.IPv4Interface(cidr)
        if iface.network.subnet_of(LAB_NETWORK) is False:
            raise ValueError(f"{cidr}: a lab uses addresses in {LAB_NETWORK} only")
        ns = f"{self.prefix}-{name}"
        self._netns_add(ns)
        port = f"v{len(self.namespaces)}"
        self.ip(self.router, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.ip(self.router, "link", "set", port, "master", "br0", "up")
        self.ip(ns, "addr", "add", cidr, "dev", "eth0")
        self.ip(ns, "link", "set", "eth0", "up")
        self.namespaces[name] = ns
        return ns

    def route(self, name: str, cidr: str) -> None:
        """Route ``cidr`` (e.g. the Service ClusterIP range) out of ``eth0``: it never reaches beyond the bridge."""
        self.ip(self.namespaces[name], "route", "add", cidr, "dev", "eth0")

    def exec_args(self, name: str, argv: list[str], uid: int | None = None) -> list[str]:
        prefix = ["ip", "netns", "exec", self.namespaces[name]]
        if uid is None:
            return [*prefix, *argv]
        return [*prefix, sys.executable, "-c", AS_USER, str(uid), str(uid), self._runnable(argv[0]), *argv[1:]]

    def _runnable(self, program: str) -> str:
        """``program`` as another UID can run it: a copy in a directory of the lab's that every user may enter. The
        checkout may sit below a directory only its owner can enter (``mktemp -d`` makes them 0700), where a process
        that dropped to the sidecar's UID could not even reach the binary."""
        if not os.path.isabs(program):
            return program  # looked up on PATH, which is every user's
        if program not in self._programs:
            if self._bin is None:
                self._bin = tempfile.mkdtemp(prefix=f"{self.prefix}-bin-")
                os.chmod(self._bin, 0o755)
            copy = os.path.join(self._bin, f"{len(self._programs)}-{os.path.basename(program)}")
            shutil.copy2(program, copy)
            os.chmod(copy, 0o755)
            self._programs[program] = copy
        return self._programs[program]

    def run(self, name: str, argv: list[str], input: str | None = None, timeout: float = 20.0) -> str:
        return _run(*self.exec_args(name, argv), input=input, timeout=timeout)

    def spawn(
        self, name: str, argv: list[str], uid: int | None = None, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        if log is None:
            p = subprocess.Popen(self.exec_args(name, argv, uid), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        else:
            with open(log, "ab") as out:  # the child keeps its own descriptor
                p = subprocess.Popen(self.exec_args(name, argv, uid), stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(p)
        return p

    def echo_server(self, name: str, server: str, host: str, port: int) -> subprocess.Popen[bytes]:
        return self.spawn(name, [sys.executable, "-c", ECHO_SERVER, server, host, str(port)])

    def http_get(
        self,
        name: str,
        address: str,
        port: int,
        path: str = "/",
        host: str = "",
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """One GET from inside ``name`` (as root: a workload, captured like any app)."""
        argv = [
            sys.executable,
            "-c",
            HTTP_CLIENT,
            address,
            str(port),
            path,
            host,
            str(timeout),
            json.dumps(headers or {}),
        ]
        out = self.run(name, argv, timeout=timeout + 10)
        result: dict[str, Any] = json.loads(out)
        return result

    def wait_http(self, name: str, address: str, port: int, path: str = "/", timeout: float = 30.0) -> dict[str, Any]:
        """Poll until a GET answers (any status); bounded by ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.http_get(name, address, port, path, timeout=2.0)
            if "status" in got or time.monotonic() > deadline:
                return got
            time.sleep(0.2)
