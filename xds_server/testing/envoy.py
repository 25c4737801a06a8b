"""Run a real Envoy in tests: :class:`EnvoyProcess`, an ADS bootstrap builder and a free-port helper.

Envoy runs with ``--disable-hot-restart``, a unique ``--base-id``, its log in a file, and its admin on 127.0.0.1 at a
port Envoy picks itself (read back through ``--admin-address-path``, so there is no port race)::

    with EnvoyProcess(ads_bootstrap("node-1", xds_port)) as envoy:
        envoy.wait_ready()
        envoy.stats()["cluster_manager.cds.update_success"]

In async tests use ``async with`` and ``await envoy.wait_ready_async()`` (the in-process xDS server needs the loop).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xds_server.envoy_binary import envoy_path

_base_ids = itertools.count()
_running: weakref.WeakSet[EnvoyProcess] = weakref.WeakSet()


def ads_bootstrap(
    node_id: str,
    xds_port: int,
    *,
    xds_host: str = "127.0.0.1",
    delta: bool = False,
    node_cluster: str = "meshwork-test",
    xds_cluster: str = "meshwork-xds",
    connect_timeout: str = "1s",
) -> dict[str, Any]:
    """A bootstrap taking everything (CDS, LDS and through them EDS, RDS, SDS) from one ADS server.

    The xDS cluster enables HTTP/2 explicitly: without it Envoy stays PRE_INITIALIZING and logs nothing.
    """
    source = {"ads": {}, "resource_api_version": "V3"}
    return {
        "node": {"id": node_id, "cluster": node_cluster},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": xds_cluster}}],
                "set_node_on_first_message_only": True,
            },
            "cds_config": source,
            "lds_config": source,
        },
        "static_resources": {
            "clusters": [
                {
                    "name": xds_cluster,
                    "type": "STATIC",
                    "connect_timeout": connect_timeout,
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {
                                "http2_protocol_options": {
                                    "connection_keepalive": {"interval": "10s", "timeout": "5s"},
                                }
                            },
                        }
                    },
                    "load_assignment": {
                        "cluster_name": xds_cluster,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {"socket_address": {"address": xds_host, "port_value": xds_port}}
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ]
        },
    }


class EnvoyError(RuntimeError):
    pass


class EnvoyProcess:
    """One Envoy process. Use as a (sync or async) context manager; :meth:`stop` terminates, then kills."""

    def __init__(
        self,
        bootstrap: Mapping[str, Any],
        *,
        workdir: Path | None = None,
        log_level: str = "info",
        concurrency: int = 1,
        extra_args: Sequence[str] = (),
        envoy: Path | None = None,
    ) -> None:
        self.bootstrap = dict(bootstrap)
        self.bootstrap.setdefault("admin", {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}})
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="envoy-")) if workdir is None else workdir
        self.log_level = log_level
        self.concurrency = concurrency
        self.extra_args = list(extra_args)
        self.envoy = envoy or envoy_path()
        self.base_id = (os.getpid() % 100_000) * 100 + next(_base_ids) % 100
        self.config_path = self.workdir / "bootstrap.json"
        self.log_path = self.workdir / "envoy.log"
        self.admin_address_path = self.workdir / "admin-address"
        self.proc: subprocess.Popen[bytes] | None = None
        self._admin_port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> EnvoyProcess:
        if self.proc is not None:
            raise EnvoyError("already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.bootstrap, indent=1))
        with contextlib.suppress(FileNotFoundError):
            self.admin_address_path.unlink()
        args = [
            str(self.envoy),
            "-c",
            str(self.config_path),
            "--disable-hot-restart",
            "--base-id",
            str(self.base_id),
            "--log-path",
            str(self.log_path),
            "-l",
            self.log_level,
            "--concurrency",
            str(self.concurrency),
            "--admin-address-path",
            str(self.admin_address_path),
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        _running.add(self)
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``. Returns the exit code."""
        proc, self.proc = self.proc, None
        _running.discard(self)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()
        if self._own_workdir and not os.environ.get("MESHWORK_KEEP_ENVOY_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        return proc.returncode

    def __enter__(self) -> EnvoyProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> EnvoyProcess:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            raise EnvoyError(f"envoy exited with {self.proc.returncode}: {err[-2000:]}\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ------------------------------------------------------------------ admin

    @property
    def admin_port(self) -> int:
        if self._admin_port is None:
            self._wait(lambda: self.admin_address_path.exists() and self.admin_address_path.read_text().strip(), 30)
            addr = self.admin_address_path.read_text().strip()
            self._admin_port = int(addr.rsplit(":", 1)[1])
        return self._admin_port

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def admin_get(self, path: str, timeout: float = 5.0) -> str:
        with urllib.request.urlopen(self.admin_url + path, timeout=timeout) as r:
            return str(r.read().decode())

    def admin_post(self, path: str, timeout: float = 5.0) -> str:
        req = urllib.request.Request(self.admin_url + path, method="POST")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return str(r.read().decode())

    def stats(self) -> dict[str, int | str]:
        """``/stats`` as a dict; counters and gauges are ints."""
        out: dict[str, int | str] = {}
        for line in self.admin_get("/stats").splitlines():
            name, sep, value = line.partition(": ")
            if not sep:
                continue
            out[name] = int(value) if value.isdigit() else value
        return out

    def config_dump(self, resource: str | None = None) -> dict[str, Any]:
        q = f"?resource={resource}" if resource else ""
        doc: dict[str, Any] = json.loads(self.admin_get("/config_dump" + q))
        return doc

    def is_ready(self) -> bool:
        try:
            return self.admin_get("/ready", timeout=2).strip() == "LIVE"
        except (urllib.error.URLError, OSError):
            return False

    def _wait(self, cond: Callable[[], object], timeout: float, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            if cond():
                return
            if time.monotonic() > deadline:
                raise EnvoyError(f"timed out after {timeout}s waiting for {what}\n{self.log_tail()}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for ``/ready`` to say LIVE (initial CDS/LDS fetched and warmed)."""
        self._wait(self.is_ready, timeout, "/ready")

    def wait_for(self, cond: Callable[[EnvoyProcess], object], timeout: float = 30.0, what: str = "condition") -> None:
        self._wait(lambda: cond(self), timeout, what)

    async def wait_ready_async(self, timeout: float = 30.0) -> None:
        await asyncio.to_thread(self.wait_ready, timeout)

    async def wait_for_async(
        self, cond: Callable[[EnvoyProcess], object], timeout: float = 30.0, what: str = "condition"
    ) -> None:
        await asyncio.to_thread(self.wait_for, cond, timeout, what)


@atexit.register
def _kill_leftovers() -> None:  # pragma: no cover - only when a test forgot to stop its Envoy
    for e in list(_running):
        with contextlib.suppress(Exception):
            e.stop(timeout=2)
