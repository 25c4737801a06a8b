"""A standalone xDS server process for tests and benchmarks: ``python -m xds_server.testing.server``.

It serves snapshots from a JSON file (see :func:`write_snapshots`), reloads it on SIGHUP, and prints one JSON line
``{"xds_port": ..., "admin_port": ..., "pid": ...}`` on stdout once it listens. :class:`XdsServerProcess` drives it
from a test (start, reload, kill -9, restart on the same port).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from xds_server import gc_policy
from xds_server.ads import AdsServer, make_server
from xds_server.ads_transport import server_config
from xds_server.cache import SnapshotCache
from xds_server.snapshot import CachedResource, Snapshot
from xds_server.sync import SyncTracker


def write_snapshots(path: Path, groups: Iterable[tuple[Iterable[str], Snapshot]]) -> None:
    """Write ``[(node ids, snapshot), ...]`` for the server process (atomically: write then rename)."""
    doc = [
        {
            "nodes": list(nodes),
            "resources": [
                {"type_url": r.type_url, "name": r.name, "body": base64.b64encode(r.body).decode()}
                for t in snap.resources.values()
                for r in t.values()
            ],
        }
        for nodes, snap in groups
    ]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def read_snapshots(path: Path) -> list[tuple[list[str], Snapshot]]:
    out = []
    for g in json.loads(path.read_text()):
        items = [CachedResource.of(r["type_url"], r["name"], base64.b64decode(r["body"])) for r in g["resources"]]
        out.append((list(g["nodes"]), Snapshot.from_resources(items)))
    return out


def load_into(cache: SnapshotCache, path: Path) -> None:
    for nodes, snap in read_snapshots(path):
        for n in nodes:
            cache.set_snapshot(n, snap)


async def serve(snapshots: Path, host: str, port: int, admin_port: int | None) -> None:
    cache, sync = SnapshotCache(), SyncTracker()
    load_into(cache, snapshots)
    cache.mark_ready()
    # benchmarks on a loaded host may lengthen the keepalive-ping timeout (the product default is server_config's)
    timeout = os.environ.get("MESHWORK_XDS_KEEPALIVE_TIMEOUT")
    config = server_config(keepalive_timeout=float(timeout)) if timeout else None
    server = make_server(AdsServer(cache, sync), config)
    await server.start(host, port, reuse_address=True, backlog=4096)
    admin = None
    if admin_port is not None:
        from xds_server.admin import AdminServer

        admin = AdminServer(cache, sync, port=admin_port)
        await admin.start()
    sock = server._server.sockets[0] if server._server else None  # type: ignore[attr-defined]  # grpclib internals
    bound = sock.getsockname()[1] if sock is not None else port
    print(json.dumps({"xds_port": bound, "admin_port": admin.port if admin else None, "pid": os.getpid()}), flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: load_into(cache, snapshots))
    await stop.wait()
    server.close()
    await server.wait_closed()
    if admin is not None:
        await admin.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--snapshots", type=Path, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--admin-port", type=int, default=None)
    a = p.parse_args(argv)
    gc_policy.configure()  # as the product's entry points do (what the push benchmark measures)
    profile = os.environ.get("MESHWORK_PROFILE")  # write a cProfile dump of the whole run there (benchmarks)
    if not profile:
        asyncio.run(serve(a.snapshots, a.host, a.port, a.admin_port))
        return
    import cProfile

    with cProfile.Profile() as prof:
        asyncio.run(serve(a.snapshots, a.host, a.port, a.admin_port))
    prof.dump_stats(profile)


class XdsServerProcess:
    """The server as a child process. ``port=0`` picks a port on first start and keeps it for restarts."""

    def __init__(self, snapshots: Path, *, port: int = 0, admin: bool = False, env: Mapping[str, str] | None = None):
        self.snapshots = snapshots
        self.port = port
        self.admin = admin
        self.admin_port: int | None = None
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> XdsServerProcess:
        args = [sys.executable, "-m", "xds_server.testing.server", "--snapshots", str(self.snapshots)]
        args += ["--port", str(self.port)]
        if self.admin:
            args += ["--admin-port", str(self.admin_port or 0)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=self.env, start_new_session=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while not line and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if self.proc.poll() is not None:
                break
        if not line:
            self.kill()
            raise RuntimeError("the xDS server process did not start")
        info: dict[str, Any] = json.loads(line)
        self.port = int(info["xds_port"])
        self.admin_port = info["admin_port"]
        return self

    def reload(self) -> None:
        """Re-read the snapshot file (SIGHUP)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the connected proxies."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> XdsServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


if __name__ == "__main__":
    main()
