"""A real local mesh for tests: declare services, clients and policies in Python; get sidecars and traffic.

    mesh = LocalMeshBuilder(tmp_path)
    mesh.service("backend", instances=[{"name": "backend-v1", "labels": {"version": "v1"}}])
    mesh.client("caller", upstreams=["backend"])
    mesh.policy(TRAFFIC_POLICY_YAML)
    with mesh.run() as running:
        resp = running.get("caller", "backend", "/hello")

Everything is real: ``meshctl local run`` as a child process (so tests can kill and restart the control plane),
one Envoy per workload, the demo app (``examples/apps/echo.py``) as every workload, mTLS between sidecars. Ports
are allocated free on 127.0.0.1. ``run()`` returns once every proxy has ACKed its config.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from xds_server.ports import free_port

ECHO_APP = Path(__file__).resolve().parents[3] / "examples" / "apps" / "echo.py"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def served_by(self) -> str:
        return self.headers.get("x-served-by", "")


def http(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> Response:
    """One HTTP request; HTTP errors are returned as responses, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    start = time.monotonic()
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return Response(
                resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read(), time.monotonic() - start
            )
    except urllib.error.HTTPError as e:
        return Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read(), time.monotonic() - start)


T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.1) -> T:
    """Call ``check`` until it returns something truthy and return that; after ``timeout`` seconds raise
    ``TimeoutError`` naming the last value (a bounded wait for asynchronous effects such as ejections)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"still {value!r} after {timeout}s")
        time.sleep(interval)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))


@dataclass
class _Workload:
    name: str
    namespace: str
    service_account: str
    admin_port: int
    upstream_ports: dict[str, int] = field(default_factory=dict)
    app_port: int | None = None
    inbound_port: int | None = None


class LocalMeshBuilder:
    def __init__(self, directory: Path, *, namespace: str = "default") -> None:
        self.directory = directory
        self.namespace = namespace
        self.mesh_dir = directory / "mesh"
        self.state_dir = directory / "state"
        self.services: list[dict[str, Any]] = []
        self.clients: list[dict[str, Any]] = []
        self.workloads: dict[str, _Workload] = {}
        self.documents: dict[str, str] = {}
        self.mesh_spec: dict[str, Any] = {}

    def service(
        self,
        name: str,
        *,
        instances: list[dict[str, Any]] | None = None,
        protocol: str = "HTTP",
        upstreams: list[str] | None = None,
    ) -> None:
        """A service and its instances. Each instance dict may set name, labels, serviceAccount, locality and
        ``args`` (extra echo.py arguments such as ``["--fail-every", "2"]``; ``{upstream:NAME}`` stands for the
        instance's local URL of upstream NAME, e.g. ``["--upstream", "{upstream:backend}"]``)."""
        out = []
        for inst in instances or [{"name": f"{name}-1"}]:
            inst = dict(inst)
            wl = _Workload(
                inst["name"],
                self.namespace,
                inst.pop("serviceAccount", name),
                free_port(),
                app_port=free_port(),
                inbound_port=free_port(),
            )
            wl.upstream_ports = {u: free_port() for u in upstreams or []}
            self.workloads[wl.name] = wl
            # "{upstream:NAME}" in args is this instance's local URL for upstream NAME (through its own sidecar).
            args = [_expand_upstreams(str(a), wl.upstream_ports) for a in inst.pop("args", [])]
            out.append(
                {
                    **inst,
                    "port": wl.app_port,
                    "serviceAccount": wl.service_account,
                    "sidecar": {
                        "inboundPort": wl.inbound_port,
                        "adminPort": wl.admin_port,
                        "upstreams": [{"service": u, "localPort": p} for u, p in wl.upstream_ports.items()],
                    },
                    "command": [sys.executable, str(ECHO_APP), "--name", wl.name, "--port", str(wl.app_port), *args],
                }
            )
        self.services.append(
            {"name": name, "namespace": self.namespace, "ports": [{"port": 80, "protocol": protocol}], "instances": out}
        )

    def client(self, name: str, *, upstreams: list[str], service_account: str | None = None) -> None:
        """A workload that only calls (its sidecar has outbound listeners, no inbound)."""
        wl = _Workload(name, self.namespace, service_account or name, free_port())
        wl.upstream_ports = {u: free_port() for u in upstreams}
        self.workloads[name] = wl
        self.clients.append(
            {
                "name": name,
                "namespace": self.namespace,
                "serviceAccount": wl.service_account,
                "sidecar": {
                    "adminPort": wl.admin_port,
                    "upstreams": [{"service": u, "localPort": p} for u, p in wl.upstream_ports.items()],
                },
            }
        )

    def policy(self, text: str, file: str | None = None) -> str:
        """Add policy YAML (one or more documents). Returns the file name it is written to."""
        name = file or f"policy-{len(self.documents)}.yaml"
        self.documents[name] = text
        return name

    def mesh(self, **spec: Any) -> None:
        self.mesh_spec = spec

    def write(self) -> None:
        self.mesh_dir.mkdir(parents=True, exist_ok=True)
        inventory = {
            "apiVersion": "meshwork.io/v1alpha1",
            "kind": "Inventory",
            "metadata": {"name": "test"},
            "spec": {"services": self.services, "clients": self.clients},
        }
        (self.mesh_dir / "inventory.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        mesh = {
            "apiVersion": "meshwork.io/v1alpha1",
            "kind": "Mesh",
            "metadata": {"name": "default"},
            "spec": {"trustDomain": "test.local", **self.mesh_spec},
        }
        (self.mesh_dir / "mesh.yaml").write_text(yaml.safe_dump(mesh, sort_keys=False))
        for name, text in self.documents.items():
            (self.mesh_dir / name).write_text(text)

    @contextlib.contextmanager
    def run(
        self, *, timeout: float = 60.0, delta: bool = False, extra_args: list[str] | None = None
    ) -> Iterator[RunningMesh]:
        """Start ``meshctl local run`` (``extra_args`` are appended to its command line)."""
        self.write()
        running = RunningMesh(self, free_port(), free_port(), delta=delta, extra_args=extra_args)
        try:
            running.start(timeout=timeout)
            yield running
        finally:
            running.stop()


class RunningMesh:
    def __init__(
        self,
        builder: LocalMeshBuilder,
        xds_port: int,
        admin_port: int,
        *,
        delta: bool = False,
        extra_args: list[str] | None = None,
    ) -> None:
        self.builder = builder
        self.extra_args = list(extra_args or [])
        self.xds_port = xds_port
        self.admin_port = admin_port
        self.delta = delta
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = builder.directory / "control-plane.log"

    # ------------------------------------------------------------- lifecycle

    def start(self, *, timeout: float = 60.0) -> None:
        argv = [
            sys.executable,
            "-m",
            "meshctl",
            "local",
            "run",
            "-f",
            str(self.builder.mesh_dir),
            "--state-dir",
            str(self.builder.state_dir),
            "--xds-port",
            str(self.xds_port),
            "--admin-port",
            str(self.admin_port),
            "--envoy-log-level",
            "info",
        ]
        if self.delta:
            argv.append("--delta")
        argv += self.extra_args
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=ECHO_APP.parents[2],
            )
        self.wait_converged(timeout=timeout)
        for wl in self.builder.workloads.values():
            if wl.app_port is not None:
                _wait_port(wl.app_port, timeout)

    def stop(self) -> None:
        """Stop the control plane the way a user does (SIGTERM): it stops every process it started. Sidecars
        and workloads left behind (e.g. after :meth:`kill_control_plane` with no restart) are killed too."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        _kill_pidfiles(self.builder.state_dir)

    def kill_control_plane(self) -> None:
        """SIGKILL only the control-plane process: sidecars and workloads keep running."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def restart_control_plane(self, *, timeout: float = 60.0) -> None:
        self.start(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    # ------------------------------------------------------------- control plane state

    def admin(self, path: str) -> Any:
        return http(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5).json()

    def sync(self) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("/debug/syncz")["proxies"]
        return result

    def policies(self) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("/debug/policyz")["policies"]
        return result

    def wait_converged(self, *, timeout: float = 30.0, changed_from: dict[str, str] | None = None) -> None:
        """Until every workload's proxy is connected and has ACKed the latest config (and, with
        ``changed_from``, a version different from the one given there)."""

        def converged() -> tuple[bool, Any]:
            sync = self.sync()
            done = all(
                node in sync
                and sync[node]["in_sync"]
                and (changed_from is None or sync[node]["acked_version"] != changed_from.get(node))
                for node in self.node_ids()
            )
            return done, sync

        self._poll(converged, timeout=timeout, interval=0.1, what="mesh did not converge")

    def versions(self) -> dict[str, str]:
        return {node: p["acked_version"] for node, p in self.sync().items()}

    def node_ids(self) -> list[str]:
        return [f"{w.namespace}/{w.name}" for w in self.builder.workloads.values()]

    def edit(self, file: str, text: str, *, timeout: float = 10.0) -> float:
        """Write a policy file and wait until every proxy ACKs the change. Returns the seconds it took.

        "The change": the control plane's desired snapshot of at least one proxy differs from before; then every
        proxy (changed or not) must have ACKed its desired snapshot. An edit that changes no proxy's config (or
        is rejected as invalid) therefore times out: use :meth:`write` for those."""
        before = self.desired()
        start = time.monotonic()
        self.write(file, text)
        self.wait_applied(timeout=timeout, changed_from=before)
        return time.monotonic() - start

    def write(self, file: str, text: str) -> None:
        """Replace a file of the mesh directory atomically (the control plane sees one change), without waiting."""
        path = self.builder.mesh_dir / file
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)

    def desired(self) -> dict[str, str]:
        """Node id -> the snapshot version the control plane's last translation wants it to run."""
        result: dict[str, str] = self.admin("/debug/policyz")["desired"]
        return result

    def wait_applied(self, *, timeout: float = 10.0, changed_from: dict[str, str] | None = None) -> None:
        """Until every workload's proxy ACKed the version the last translation wants for it (and, with
        ``changed_from``, that translation differs from ``changed_from`` for at least one proxy)."""

        def applied() -> tuple[bool, Any]:
            desired, acked = self.desired(), self.versions()
            done = (changed_from is None or desired != changed_from) and all(
                node in desired and acked.get(node) == desired[node] for node in self.node_ids()
            )
            return done, {"desired": desired, "acked": acked}

        self._poll(applied, timeout=timeout, interval=0.05, what="config not applied")

    def _poll(self, check: Callable[[], tuple[bool, Any]], *, timeout: float, interval: float, what: str) -> None:
        """Call ``check`` until it reports done; fail at once if the control plane exits, or after ``timeout``
        with the last state seen and the control plane's log. Admin endpoint hiccups count as not done yet."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"control plane exited ({self.proc.returncode}):\n{self.log()[-4000:]}")
            with contextlib.suppress(OSError, ValueError, KeyError):
                done, last = check()
                if done:
                    return
            time.sleep(interval)
        raise TimeoutError(f"{what} in {timeout}s: {json.dumps(last)[:2000]}\n{self.log()[-4000:]}")

    # ------------------------------------------------------------- traffic

    def url(self, caller: str, service: str, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.builder.workloads[caller].upstream_ports[service]}{path}"

    def get(self, caller: str, service: str, path: str = "/", **kwargs: Any) -> Response:
        return http(self.url(caller, service, path), **kwargs)

    def sidecar_admin(self, workload: str, path: str) -> str:
        port = self.builder.workloads[workload].admin_port
        return http(f"http://127.0.0.1:{port}{path}", timeout=5).body.decode()

    def stats(self, workload: str, prefix: str = "") -> dict[str, int]:
        """Counters and gauges of one sidecar, by name (``/stats?filter=``)."""
        text = self.sidecar_admin(workload, f"/stats?filter={urllib.parse.quote(prefix)}" if prefix else "/stats")
        out: dict[str, int] = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                out[name] = int(value)
        return out

    def stat_sum(self, workload: str, pattern: str) -> int:
        """The sum of one sidecar's counters/gauges whose name matches the regex ``pattern`` (e.g.
        ``r"^cluster\\.backend.*\\.upstream_rq_retry$"``); 0 when none exists yet."""
        return sum(self.stats(workload, pattern).values())

    def get_concurrently(
        self, caller: str, service: str, paths: list[str], *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> list[Response]:
        """One request per path, all in flight at once (one thread each); responses in the order of ``paths``."""
        with ThreadPoolExecutor(max_workers=max(1, len(paths))) as pool:
            return list(pool.map(lambda p: self.get(caller, service, p, headers=headers, **kwargs), paths))

    def access_log(self, workload: str) -> list[str]:
        path = self.builder.state_dir / "proxies" / f"{self.builder.namespace}_{workload}" / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def access_log_entries(self, workload: str, path_prefix: str = "") -> list[dict[str, Any]]:
        """The sidecar's HTTP access-log entries (Text ``key=value`` or JSON lines; Envoy's own log lines and a
        line still being written are skipped), those whose path starts with ``path_prefix``."""
        entries: list[dict[str, Any]] = []
        for line in self.access_log(workload):
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    entries.append(json.loads(line))
            elif line.startswith("start_time="):
                entries.append(dict(re.findall(r"(\w+)=(\S*)", line)))
        return [e for e in entries if str(e.get("path", "")).startswith(path_prefix)]

    def app_address(self, workload: str) -> str:
        wl = self.builder.workloads[workload]
        return f"http://127.0.0.1:{wl.app_port}"


def _expand_upstreams(arg: str, ports: dict[str, int]) -> str:
    return re.sub(r"\{upstream:([a-z0-9-]+)\}", lambda g: f"http://127.0.0.1:{ports[g[1]]}", arg)


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _kill_pidfiles(state_dir: Path) -> None:
    """Last resort after a test: no process of this mesh may outlive it."""
    for pid_file in [*state_dir.glob("proxies/*/*.pid"), *state_dir.glob("ratelimit/*.pid")]:
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().split()[0])
            os.killpg(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
