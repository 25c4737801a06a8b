"""The real global rate-limit service for tests: Debian's ``redis-server`` and the upstream ``envoyproxy/ratelimit``
(built by ``scripts/ratelimit/build.sh``), both on 127.0.0.1 with free ports, reading the configuration local mode
writes (``<state dir>/ratelimit/config/meshwork.yaml``).

    rls = RateLimitStack(state_dir, grpc_port=free_port())
    mesh.mesh(rateLimitService={"address": "127.0.0.1", "port": rls.grpc_port})
    with mesh.run() as m, rls:
        ...
        rls.stop_service()      # the sidecars' configured failure mode now decides
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from xds_server.ports import free_port

ROOT = Path(__file__).resolve().parents[3]
BUILD = ROOT / "scripts" / "ratelimit" / "build.sh"


def ratelimit_binary() -> Path:
    """The cached binary (building it on first use)."""
    out = subprocess.run([str(BUILD)], check=True, capture_output=True, text=True).stdout.strip().splitlines()
    return Path(out[-1])


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}:\n{log.read_text(errors='replace')[-3000:]}")


class RateLimitStack:
    def __init__(self, state_dir: Path, *, grpc_port: int | None = None) -> None:
        self.state_dir = state_dir
        self.grpc_port = grpc_port or free_port()
        self.redis_port = free_port()
        self.dir = state_dir.parent / "ratelimit-stack"
        self.redis: subprocess.Popen[bytes] | None = None
        self.service: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str], name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )

    def start(self) -> None:
        redis = shutil.which("redis-server")
        if redis is None:
            raise RuntimeError("redis-server is missing: run scripts/ratelimit/build.sh (make ratelimit-binaries)")
        self.redis = self._spawn(
            [redis, "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "", "--appendonly", "no"],
            "redis",
        )
        _wait_port(self.redis_port, 20, self.redis, self.dir / "redis.log")
        self.start_service()

    def start_service(self) -> None:
        env = {
            **os.environ,
            "USE_STATSD": "false",
            "LOG_LEVEL": "warn",
            "REDIS_SOCKET_TYPE": "tcp",
            "REDIS_URL": f"127.0.0.1:{self.redis_port}",
            "RUNTIME_ROOT": str(self.state_dir),
            "RUNTIME_SUBDIRECTORY": "ratelimit",
            "RUNTIME_WATCH_ROOT": "false",
            "RUNTIME_IGNOREDOTFILES": "true",
            "HOST": "127.0.0.1",
            "PORT": str(free_port()),
            "GRPC_HOST": "127.0.0.1",
            "GRPC_PORT": str(self.grpc_port),
            "DEBUG_HOST": "127.0.0.1",
            "DEBUG_PORT": str(free_port()),
        }
        self.service = self._spawn([str(ratelimit_binary())], "ratelimit", env)
        _wait_port(self.grpc_port, 30, self.service, self.dir / "ratelimit.log")

    def stop_service(self) -> None:
        _stop(self.service)
        self.service = None

    def __enter__(self) -> RateLimitStack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _stop(self.service)
        _stop(self.redis)


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
