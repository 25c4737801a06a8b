"""Local mode runs the global rate-limit service itself when a policy needs it: Debian's ``redis-server`` and the
upstream ``envoyproxy/ratelimit`` (built by ``scripts/ratelimit/build.sh``), both on 127.0.0.1, both children of
the runner (stopped with everything else, adopted by a restarted runner like the sidecars).

"Needed" means: some policy in force has a global rate limit (the service's configuration, written from the
policies by :mod:`mesh_operator.local.ratelimit`, has a descriptor). Where the service listens:

- ``Mesh.spec.rateLimitService`` unset: local mode picks a loopback port (remembered in the state directory),
  points the sidecars at it (:meth:`LocalRateLimitService.with_local_service`) and runs the service there, so
  global limits work with no setting at all;
- set: the user runs the service at that address; local mode starts nothing.

Redis listens on a loopback port of its own and requires a password (made once, kept in the state directory,
mode 0600): another local user cannot read or spend the budgets. The counters live in memory only (``save ""``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import socket
import time
from pathlib import Path

from mesh_operator.api.ratelimit_global import RateLimitService
from mesh_operator.local.processes import ManagedProcess
from mesh_operator.translate.ratelimit_global import service_config
from mesh_operator.translate.state import MeshState
from xds_server.ports import free_port

log = logging.getLogger("meshwork.local")

BINARY_ENV = "MESHWORK_RATELIMIT_BINARY"
CACHE_ENV = "MESHWORK_RATELIMIT_CACHE"


def directory(state_dir: Path) -> Path:
    return state_dir / "ratelimit"


def find_binary() -> Path | None:
    """``$MESHWORK_RATELIMIT_BINARY``, else the newest build in the cache ``scripts/ratelimit/build.sh`` fills."""
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "meshwork" / "ratelimit")
    builds = [p for p in cache.glob("*/ratelimit") if os.access(p, os.X_OK)]
    return max(builds, key=lambda p: p.stat().st_mtime) if builds else None


def needed(state: MeshState) -> bool:
    return bool(service_config(state)["descriptors"])


def _sticky_port(path: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text())
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    port = free_port()
    path.write_text(str(port))
    return port


def _listens(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def _await_port(port: int, proc: ManagedProcess, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while proc.running and time.monotonic() < deadline:
        if _listens(port):
            return True
        time.sleep(0.02)
    return False


@dataclasses.dataclass
class LocalRateLimitService:
    state_dir: Path
    redis: ManagedProcess | None = None
    service: ManagedProcess | None = None
    grpc_port: int | None = None
    #: (the Mesh as loaded, the same Mesh pointing at the local service): one object per loaded Mesh, so the
    #: translator's memoized results stay valid across applies.
    _filled: tuple[object, object] | None = None
    #: the Mesh of the last state had no rateLimitService: the service is ours to run
    _ours: bool = False

    @property
    def dir(self) -> Path:
        return directory(self.state_dir)

    def with_local_service(self, state: MeshState) -> MeshState:
        """``state`` with ``Mesh.spec.rateLimitService`` pointing at the local service when a policy needs one and
        the Mesh names none."""
        self._ours = state.mesh.spec.rate_limit_service is None
        if not self._ours or not needed(state):
            return state
        if self._filled is None or self._filled[0] is not state.mesh:
            port = _sticky_port(self.dir / "grpc-port")
            spec = state.mesh.spec.model_copy(
                update={"rate_limit_service": RateLimitService(address="127.0.0.1", port=port)}
            )
            self._filled = (state.mesh, state.mesh.model_copy(update={"spec": spec}))
            log.info("global rate limits: the local rate-limit service listens on 127.0.0.1:%d", port)
        return dataclasses.replace(state, mesh=self._filled[1])  # type: ignore[arg-type]

    def reconcile(self, state: MeshState) -> None:
        """Start the service (and Redis) when ``state`` needs it locally; stop them when it no longer does."""
        target = state.mesh.spec.rate_limit_service
        if not needed(state) or target is None or not self._ours:
            if target is not None and needed(state) and not self._ours:
                log.info("global rate limits: using the rate-limit service at %s:%d", target.address, target.port)
            self.stop()
            return
        if self.service is not None and self.grpc_port == target.port and self.service.running:
            return
        self.stop()
        binary, redis = find_binary(), shutil.which("redis-server")
        if binary is None or redis is None:
            log.error(
                "global rate limits need %s: run scripts/ratelimit/build.sh (make ratelimit-binaries); the sidecars "
                "apply each policy's failureMode until the service is up",
                " and ".join(w for w, ok in (("envoyproxy/ratelimit", binary), ("redis-server", redis)) if ok is None),
            )
            return
        self._start(binary, Path(redis), target.port)

    def _start(self, binary: Path, redis: str | Path, grpc_port: int) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        password = self._password()
        redis_port = _sticky_port(self.dir / "redis-port")
        conf = self.dir / "redis.conf"
        text = (
            f"bind 127.0.0.1\nport {redis_port}\nprotected-mode yes\nrequirepass {password}\n"
            'save ""\nappendonly no\n'
            f"dir {self.dir}\n"
        )
        if not conf.exists() or conf.read_text() != text:
            conf.touch(mode=0o600)
            conf.write_text(text)
        self.redis = ManagedProcess(
            "redis (rate-limit counters)",
            [str(redis), str(conf)],
            self.dir,
            self.dir / "redis.log",
            self.dir / "redis.pid",
        )
        self.redis.start()
        # The service panics at start when Redis does not answer yet, so it starts only once Redis listens (Redis
        # is up in milliseconds; the bound keeps a broken Redis from stalling the runner).
        if not _await_port(redis_port, self.redis, timeout=10.0):
            log.error("redis does not listen on 127.0.0.1:%d; see %s", redis_port, self.dir / "redis.log")
        env = {
            "USE_STATSD": "false",
            "LOG_LEVEL": "warn",
            "REDIS_SOCKET_TYPE": "tcp",
            "REDIS_URL": f"127.0.0.1:{redis_port}",
            "REDIS_AUTH": password,
            "RUNTIME_ROOT": str(self.state_dir),
            "RUNTIME_SUBDIRECTORY": "ratelimit",
            "RUNTIME_WATCH_ROOT": "false",
            "RUNTIME_IGNOREDOTFILES": "true",
            "HOST": "127.0.0.1",
            "PORT": str(_sticky_port(self.dir / "http-port")),
            "GRPC_HOST": "127.0.0.1",
            "GRPC_PORT": str(grpc_port),
            "DEBUG_HOST": "127.0.0.1",
            "DEBUG_PORT": str(_sticky_port(self.dir / "debug-port")),
        }
        self.service = ManagedProcess(
            f"rate-limit service 127.0.0.1:{grpc_port}",
            [str(binary)],
            self.dir,
            self.dir / "ratelimit.log",
            self.dir / "ratelimit.pid",
            env=env,
        )
        self.service.start()
        self.grpc_port = grpc_port

    def _password(self) -> str:
        path = self.dir / "redis-password"
        with contextlib.suppress(OSError):
            text = path.read_text().strip()
            if text:
                return text
        password = secrets.token_urlsafe(24)
        path.touch(mode=0o600)
        path.write_text(password)
        return password

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the service answers on its gRPC port (bounded; a service that does not come up is logged)."""
        if self.service is None or self.grpc_port is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.service.running:
                log.error("the rate-limit service exited; see %s", self.dir / "ratelimit.log")
                return
            if _listens(self.grpc_port):
                log.info("rate-limit service ready on 127.0.0.1:%d", self.grpc_port)
                return
            await asyncio.sleep(0.1)
        log.error("the rate-limit service does not listen on 127.0.0.1:%d after %.0fs", self.grpc_port, timeout)

    def stop(self) -> None:
        for proc in (self.service, self.redis):
            if proc is not None:
                proc.stop()
        if self.service is not None:
            log.info("stopped the rate-limit service and redis")
        self.service = self.redis = None
        self.grpc_port = None
