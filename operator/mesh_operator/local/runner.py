"""``meshctl local run -f DIR``: the control plane fed by the YAML files in DIR, plus the processes it describes.

Every object is judged on its own, at start-up and after each edit of DIR: an invalid object is reported (in the
log and in ``meshctl status``, which then exits non-zero) and, if an earlier version of it was valid, that version
stays in force; every other file's objects and edits go through. When a policy has a global rate limit, the
runner also runs the rate-limit service and its Redis (``local/ratelimit_service.py``). Stopping (Ctrl-C, SIGTERM)
stops every process the runner started. If the runner itself dies, sidecars keep serving their last config; a
new runner with the same state directory adopts them and they reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from watchfiles import awatch

from mesh_operator.control import CertificateManager, ControlPlane
from mesh_operator.control.certs import workload_ttl
from mesh_operator.errors import LocalModeError
from mesh_operator.loader import Loaded, load_paths
from mesh_operator.local import sidecar
from mesh_operator.local.processes import ManagedProcess
from mesh_operator.local.ratelimit import write_service_config
from mesh_operator.local.ratelimit_service import LocalRateLimitService
from mesh_operator.local.sidecar import SidecarFiles
from mesh_operator.translate import MeshState
from mesh_operator.translate.rebase import rebased
from mesh_operator.translate.state import WorkloadInfo
from xds_server.ca import store
from xds_server.errors import XdsError
from xds_server.ports import free_port
from xds_server.preflight import Preflight

log = logging.getLogger("meshwork.local")


@dataclass
class LocalOptions:
    directory: Path
    state_dir: Path | None = None
    xds_port: int = 15012
    admin_port: int = 15014
    start_workloads: bool = True
    envoy_log_level: str = "warning"
    #: Worker threads per sidecar (``--concurrency``); ``None``: Envoy's default, one per hardware thread.
    envoy_concurrency: int | None = None
    delta: bool = False
    #: Check new config with real Envoy (``--mode validate``) before any sidecar receives it.
    preflight: bool = True
    #: A user-supplied root or intermediate CA (PEM files) instead of the self-signed root in the state directory.
    ca_cert: Path | None = None
    ca_key: Path | None = None
    ca_chain: Path | None = None

    def resolved_state_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        digest = hashlib.sha256(str(self.directory.resolve()).encode()).hexdigest()[:12]
        return Path.home() / ".local" / "state" / "meshwork" / f"local-{digest}"


@dataclass
class _Workload:
    info: WorkloadInfo
    sidecar: ManagedProcess
    app: ManagedProcess | None
    renew_at: datetime
    files: SidecarFiles


@dataclass
class LocalMesh:
    options: LocalOptions
    plane: ControlPlane | None = None
    state: MeshState | None = None
    workloads: dict[str, _Workload] = field(default_factory=dict)
    _certs: CertificateManager | None = None
    #: label -> the last valid Mesh/Inventory document of that label (stands in while the document is invalid)
    _good_documents: dict[str, object] = field(default_factory=dict)
    _ratelimit: LocalRateLimitService | None = None

    @property
    def state_dir(self) -> Path:
        return self.options.resolved_state_dir()

    @property
    def ratelimit(self) -> LocalRateLimitService:
        """The global rate-limit service (and its Redis), run when a policy needs them."""
        if self._ratelimit is None:
            self._ratelimit = LocalRateLimitService(self.state_dir)
        return self._ratelimit

    async def start(self) -> None:
        loaded = load_paths([self.options.directory])
        _report(loaded)
        if not loaded.objects:
            raise LocalModeError(f"no valid object in {self.options.directory}; nothing started")
        state = self._state_of(loaded)
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        trust_domain = state.mesh.spec.trust_domain
        ca_dir = self.state_dir / "ca" / trust_domain
        try:
            if self.options.ca_cert is not None and self.options.ca_key is not None:
                issuer = store.load_issuer_files(
                    self.options.ca_cert, self.options.ca_key, self.options.ca_chain, trust_domain=trust_domain
                )
            else:
                issuer = store.load_or_create(ca_dir, trust_domain)
        except XdsError as e:
            raise LocalModeError(f"certificate authority: {e}") from e
        self._certs = CertificateManager(issuer, leaf_ttl=workload_ttl(state.mesh))
        self.plane = ControlPlane(
            self._certs,
            xds_port=self.options.xds_port,
            admin_port=self.options.admin_port,
            ca_dir=ca_dir,
            preflight=Preflight() if self.options.preflight else None,
        )
        try:
            await self.plane.start()
        except OSError as e:
            raise LocalModeError(f"cannot listen on 127.0.0.1:{self.options.xds_port}: {e.strerror or e}") from e
        self._apply(state, loaded)
        await self.plane.wait_translated()
        self._reconcile()
        await self.ratelimit.wait_ready()
        _print_outcomes(self.plane)
        log.info(
            "ready: %d proxies; xDS 127.0.0.1:%d (mTLS); admin http://127.0.0.1:%d; state %s",
            len(self.workloads),
            self.plane.xds_port,
            self.plane.admin.port,
            self.state_dir,
        )

    def _state_of(self, loaded: Loaded) -> MeshState:
        """The state to run: each invalid Mesh/Inventory document replaced by its last valid version."""
        state = loaded.state(keep=self._good_documents)
        self._good_documents.update(loaded.valid_documents())
        return state

    def _apply(self, state: MeshState, loaded: Loaded) -> None:
        assert self.plane is not None
        state = self.ratelimit.with_local_service(state)
        if self.state is not None:  # (every file was read afresh: hand the translator what changed, as a delta)
            state = rebased(self.state, state)
        self.state = state
        self.plane.set_source_problems([str(p) for p in loaded.errors])
        self.plane.apply(state)
        write_service_config(self.state_dir, state)
        self.ratelimit.reconcile(state)

    def reload(self) -> bool:
        """Re-read DIR and apply every valid object. Returns False when nothing could be applied."""
        assert self.state is not None
        loaded = load_paths([self.options.directory])
        _report(loaded)
        if loaded.errors:
            log.error("%d error(s): the objects concerned keep their last valid version", len(loaded.errors))
        state = self._state_of(loaded)
        if state.mesh.spec.trust_domain != self.state.mesh.spec.trust_domain:
            log.error("edit ignored: changing the trust domain needs a restart (and a new CA)")
            return False
        self._apply(state, loaded)
        self._reconcile()
        return True

    def _reconcile(self) -> None:
        """Start sidecars (and workloads) that the inventory declares; stop those it no longer does."""
        assert self.state is not None and self._certs is not None and self.plane is not None
        wanted = self.state.workloads
        for node_id in sorted(set(self.workloads) - set(wanted)):
            self._stop_workload(node_id)
        for node_id, info in sorted(wanted.items()):
            current = self.workloads.get(node_id)
            if current is not None and current.info == info:
                continue
            if current is not None:
                self._stop_workload(node_id)
            self.workloads[node_id] = self._start_workload(info)

    def _start_workload(self, info: WorkloadInfo) -> _Workload:
        assert self._certs is not None and self.plane is not None
        directory = self.state_dir / "proxies" / info.node_id.replace("/", "_")
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        admin_port = info.admin_port or _sticky_port(directory / "admin-port")
        files = sidecar.prepare(
            directory, info, self._certs, xds_port=self.plane.xds_port, admin_port=admin_port, delta=self.options.delta
        )
        proxy = ManagedProcess(
            f"sidecar {info.node_id}",
            sidecar.envoy_argv(files, self.options.envoy_log_level, self.options.envoy_concurrency),
            directory,
            directory / "access.log",
            directory / "envoy.pid",
        )
        proxy.start()
        app = None
        if info.command and self.options.start_workloads:
            app = ManagedProcess(
                f"workload {info.node_id}",
                [sys.executable if info.command[0] == "python" else info.command[0], *info.command[1:]],
                directory,
                directory / "app.log",
                directory / "app.pid",
                cwd=Path.cwd(),
            )
            app.start()
        log.info("sidecar %s: admin http://127.0.0.1:%d, logs in %s", info.node_id, admin_port, directory)
        return _Workload(info, proxy, app, files.renew_at, files)

    def _stop_workload(self, node_id: str) -> None:
        w = self.workloads.pop(node_id)
        if w.app is not None:
            w.app.stop()
        w.sidecar.stop()
        log.info("stopped %s", node_id)

    def renew_sidecar_credentials(self) -> None:
        assert self._certs is not None
        now = datetime.now(UTC)
        for w in self.workloads.values():
            if now >= w.renew_at:
                node = sidecar.node_info(w.info, self._certs.trust_domain)
                w.renew_at = sidecar.write_credentials(w.files.directory, self._certs, node.spiffe_id)

    async def stop(self) -> None:
        for node_id in sorted(self.workloads):
            self._stop_workload(node_id)
        self.ratelimit.stop()
        if self.plane is not None:
            await self.plane.stop()


async def run(options: LocalOptions) -> int:
    mesh = LocalMesh(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await mesh.start()
        await _watch(mesh, stop)
    except LocalModeError as e:
        log.error("%s", e)
        return 1
    finally:
        await mesh.stop()
    return 0


async def _watch(mesh: LocalMesh, stop: asyncio.Event) -> None:
    async def housekeeping() -> None:
        while True:
            await asyncio.sleep(1.0)
            mesh.renew_sidecar_credentials()

    task = asyncio.get_running_loop().create_task(housekeeping())
    try:
        async for changes in awatch(mesh.options.directory, stop_event=stop, debounce=50, step=25, rust_timeout=500):
            names = sorted({Path(p).name for _, p in changes})
            log.info("change in %s", ", ".join(names))
            if mesh.reload() and mesh.plane is not None:
                await mesh.plane.wait_translated()
                await mesh.ratelimit.wait_ready()
                _print_outcomes(mesh.plane)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _report(loaded: Loaded) -> None:
    for problem in loaded.problems:
        (log.error if problem.violation.severity == "error" else log.warning)("%s", problem)


def _print_outcomes(plane: ControlPlane) -> None:
    for key, outcome in sorted(plane.status.outcomes.items(), key=lambda kv: str(kv[0])):
        c = outcome.condition()
        log.info("%s: Accepted=%s (%s) %s", key, c["status"], c["reason"], outcome.message)


def _sticky_port(path: Path) -> int:
    """A free loopback port, remembered in ``path`` so restarts reuse it."""
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text())
    port = free_port()  # below the ephemeral range: an outgoing connection cannot be holding it
    path.write_text(str(port))
    return port
