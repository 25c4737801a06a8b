"""The operator process: kopf watches in their own thread, the control plane in the main event loop.

Why two loops: kopf's docs discourage sharing its loop (on exit it cancels every task created after it started),
and a translation or a burst of status writes must never delay kopf's watch handling, nor the other way round.
So kopf runs ``asyncio.run(kopf.operator(...))`` in a daemon thread with thin handlers that only update the
:class:`Store`; the store wakes the main loop (``call_soon_threadsafe``); the main loop owns the
:class:`ControlPlane` (xDS, admin, CA), the status writer, the admission server and the Lease. kopf runs
``standalone`` (no peering: a paused kopf stops watching, which would starve the store; the Lease decides who
writes status instead).

The control plane's ready gate opens only after the first translation, and the first translation waits for the
store's ready gate: the initial LIST of every watched kind (see ``handlers``). A restarted operator therefore never
pushes a snapshot built from a partial view of the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import kopf
from aiohttp import web

from mesh_operator import inject
from mesh_operator.control import CertificateManager, ControlPlane
from mesh_operator.inject.settings import InjectionSettings
from mesh_operator.kube.gateway import GatewayStatusWriter, GatewayStore, discover
from mesh_operator.kube.handlers import RESOURCES, build_registry
from mesh_operator.kube.namespaces import NamespaceLabels
from mesh_operator.kube.receipts import merged_receipts
from mesh_operator.kube.rest import Connection, Rest, connection
from mesh_operator.kube.resync import Resyncer
from mesh_operator.kube.store import Snapshot, Store
from mesh_operator.kube.writer import StatusWriter
from xds_server.ca import store as ca_store
from xds_server.errors import EnvoyNotFound
from xds_server.preflight import Preflight

log = logging.getLogger("meshwork.operator")


@dataclass
class OperatorOptions:
    kubeconfig: str | None = None
    context: str | None = None
    #: the namespace the operator runs in (its Leases live there)
    namespace: str | None = None
    trust_domain: str = "cluster.local"
    #: the CA's directory (in a cluster: a mounted Secret shared by every replica)
    ca_dir: Path | None = None
    xds_host: str = "127.0.0.1"
    xds_port: int = 15012
    admin_host: str = "127.0.0.1"
    admin_port: int = 15014
    #: the admission webhook server (TLS); 0: pick a free port; None: no webhook server
    webhook_host: str = "127.0.0.1"
    webhook_port: int | None = None
    webhook_names: tuple[str, ...] = ("meshwork-webhook.meshwork-system.svc", "localhost")
    #: a stalled watch is noticed after ``client_timeout``; the server ends each watch after ``server_timeout``
    watch_server_timeout: float = 60.0
    watch_client_timeout: float = 90.0
    watch_connect_timeout: float = 10.0
    #: a full LIST of every watched kind this often, reconciled into the store (0: never)
    resync_period: float = 300.0
    status_interval: float = 1.0
    #: translation waits this long after the last change, at most ``max_debounce`` after the first
    debounce: float = 0.1
    max_debounce: float = 1.0
    leader_election: bool = True
    lease_name: str = "meshwork-controller"
    lease_duration: float = 15.0
    renew_period: float = 2.0
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    #: admission handlers by path, beside ``/validate`` and ``/inject``
    admission_handlers: dict[str, Any] = field(default_factory=dict)
    #: watch HTTPRoute/GRPCRoute/XMesh when the API server serves them (kube/gateway.py)
    gateway_api: bool = True
    #: sidecar injection settings (images, ports, resources); namespace labels come from the watch
    injection: InjectionSettings = field(default_factory=InjectionSettings)
    #: more GET routes of the admin endpoint (path -> aiohttp handler), e.g. the in-cluster wiring's
    admin_routes: dict[str, Any] = field(default_factory=dict)
    #: check new config with real Envoy before any sidecar receives it (needs the Envoy binary)
    preflight: bool = True
    #: the ConfigMap (in ``namespace``) to write the global rate-limit service's configuration into; None: none
    ratelimit_configmap: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _preflight(wanted: bool) -> Preflight | None:
    if not wanted:
        return None
    try:
        return Preflight()
    except EnvoyNotFound as e:
        log.warning("pre-flight check off: %s", e)
        return None


class Operator:
    def __init__(self, options: OperatorOptions) -> None:
        self.options = options
        self.conn: Connection | None = None
        self.plane: ControlPlane | None = None
        self.store = Store(on_change=self._on_store_change)
        #: Gateway API routes and XMesh (kube/gateway.py), watched when their CRDs are installed
        self.gateway = GatewayStore(on_change=self._on_store_change)
        self.snapshot: Snapshot | None = None
        self.writer: StatusWriter | None = None
        self.ratelimit_config: Any = None
        self.rest: Rest | None = None
        self.lease: Any = None
        self.peers: Any = None
        self.webhook: Any = None
        self.resyncer: Resyncer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()
        self._stop_kopf = threading.Event()
        self._kopf_ready = threading.Event()
        self._kopf_thread: threading.Thread | None = None
        self._kopf_error: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.translations = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        o = self.options
        self._loop = asyncio.get_running_loop()
        self.conn = connection(o.kubeconfig, o.context)
        namespace = o.namespace or self.conn.namespace
        ca_dir = o.ca_dir or Path.home() / ".local" / "state" / "meshwork" / "operator" / "ca" / o.trust_domain
        issuer = ca_store.load_or_create(ca_dir, o.trust_domain)
        certs = CertificateManager(issuer, leaf_ttl=timedelta(hours=24))
        self.plane = ControlPlane(
            certs,
            xds_host=o.xds_host,
            xds_port=o.xds_port,
            admin_host=o.admin_host,
            admin_port=o.admin_port,
            ca_dir=ca_dir,
            debounce=o.debounce,
            max_debounce=o.max_debounce,
            preflight=_preflight(o.preflight),
        )
        self.plane.admin.app.router.add_get("/debug/kubez", self._kubez)
        self.plane.admin.app.router.add_get("/readyz", self._readyz)
        for path, handler in o.admin_routes.items():
            self.plane.admin.app.router.add_get(path, handler)
        await self.plane.start()
        self.rest = Rest(self.conn)
        is_leader = lambda: True  # noqa: E731
        if o.leader_election:
            from mesh_operator.kube.lease import LeaderLease
            from mesh_operator.kube.peers import AckPublisher

            self.lease = LeaderLease(
                self.rest, namespace, o.lease_name, o.identity, duration=o.lease_duration, renew=o.renew_period
            )
            self.peers = AckPublisher(self.rest, namespace, o.identity, self.plane, duration=o.lease_duration)
            is_leader = self.lease.is_leader
            self._tasks += [self._spawn(self.lease.run()), self._spawn(self.peers.run())]
        if o.ratelimit_configmap:
            from mesh_operator.kube.ratelimit_config import RateLimitConfigWriter

            self.ratelimit_config = RateLimitConfigWriter(
                self.rest,
                namespace,
                o.ratelimit_configmap,
                lambda: self.snapshot.state if self.snapshot is not None else None,
                is_leader=is_leader,
            )
            self._tasks.append(self._spawn(self.ratelimit_config.run()))
        self.writer = StatusWriter(
            self.rest,
            self.store.policy_records,
            lambda: self.plane.status.outcomes if self.plane else {},
            self.receipts,
            is_leader=is_leader,
            min_interval=o.status_interval,
        )
        self._tasks += [self._spawn(self._feed()), self._spawn(self.writer.run())]
        if o.resync_period > 0:
            self.resyncer = Resyncer(self.rest, self.store, RESOURCES, period=o.resync_period)
            self._tasks.append(self._spawn(self.resyncer.run()))
        self.gateway.kinds = await discover(self.rest) if o.gateway_api else ()
        if self.gateway.kinds:
            log.info("watching Gateway API kinds: %s", ", ".join(self.gateway.kinds))
            gateway_writer = GatewayStatusWriter(
                self.rest,
                self.gateway,
                lambda: self.snapshot.state if self.snapshot else None,
                lambda: self.plane,
                is_leader=is_leader,
                min_interval=o.status_interval,
            )
            self._tasks.append(self._spawn(gateway_writer.run()))
        if o.webhook_port is not None:
            from mesh_operator.kube.admission import AdmissionServer, validate_review

            labels = NamespaceLabels(self.store.namespace_labels, self.rest.get, asyncio.get_running_loop())
            injection = dataclasses.replace(o.injection, namespace_labels=labels)
            handlers = {
                "/validate": validate_review,
                "/inject": functools.partial(inject.review, settings=injection),
                **o.admission_handlers,
            }
            self.webhook = AdmissionServer(
                certs.issuer,
                handlers,
                host=o.webhook_host,
                port=o.webhook_port,
                names=o.webhook_names,
            )
            await self.webhook.start()
        self._start_kopf()
        log.info("operator %s started (namespace %s)", o.identity, namespace)

    async def stop(self) -> None:
        self._stop_kopf.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.lease is not None:
            with contextlib.suppress(Exception):
                await self.lease.release()
        if self.webhook is not None:
            await self.webhook.stop()
        if self._kopf_thread is not None:
            await asyncio.to_thread(self._kopf_thread.join, 10.0)
        if self.rest is not None:
            await self.rest.close()
        if self.plane is not None:
            await self.plane.stop()

    def kopf_alive(self) -> bool:
        return self._kopf_thread is not None and self._kopf_thread.is_alive()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(coro)

    # ------------------------------------------------------------------ kopf in its own thread

    def _settings(self) -> kopf.OperatorSettings:
        o = self.options
        settings = kopf.OperatorSettings()
        settings.watching.server_timeout = int(o.watch_server_timeout)
        settings.watching.client_timeout = int(o.watch_client_timeout)
        settings.watching.connect_timeout = int(o.watch_connect_timeout)
        # No event (not even a bookmark) for this long: the stream is dead even if its socket is open.
        settings.watching.inactivity_timeout = o.watch_client_timeout
        settings.watching.reconnect_backoff = 1.0
        settings.posting.enabled = False  # no Events: nothing written besides status and Leases
        settings.scanning.disabled = True  # the CRDs are installed with the chart; no cluster-wide discovery
        settings.networking.request_timeout = o.watch_client_timeout
        return settings

    def _start_kopf(self) -> None:
        assert self.conn is not None
        registry = build_registry(self.store, self.conn)
        self.gateway.register(registry, self.store.mark_synced)
        settings = self._settings()

        def run() -> None:
            try:
                asyncio.run(
                    kopf.operator(
                        registry=registry,
                        settings=settings,
                        clusterwide=True,
                        standalone=True,
                        stop_flag=self._stop_kopf,
                        ready_flag=self._kopf_ready,
                    )
                )
            except BaseException as e:  # reported by kopf_alive() / the main loop
                self._kopf_error = e
                log.exception("kopf stopped")

        self._kopf_thread = threading.Thread(target=run, name="kopf", daemon=True)
        self._kopf_thread.start()

    # ------------------------------------------------------------------ store -> control plane

    def _on_store_change(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._changed.set)

    async def _feed(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(0.02)  # let a burst of watch events land in the store first
            self._changed.clear()
            if not self.store.synced or self.plane is None:
                continue
            snap = await asyncio.to_thread(self.store.snapshot)
            if self.gateway.kinds:
                snap.state = dataclasses.replace(snap.state, routes=self.gateway.routes())
            if self.snapshot is None:
                log.info(
                    "initial LIST complete: %d services, %d proxies, %d policies",
                    len(snap.state.services),
                    len(snap.state.workloads),
                    len(snap.state.policies),
                )
            for problem in snap.problems:
                if self.snapshot is None or problem not in self.snapshot.problems:
                    log.warning("%s", problem)
            self.snapshot = snap
            self.plane.apply(snap.state)
            self.translations += 1
            if self.writer is not None:
                self.writer.wake()
            if self.ratelimit_config is not None:
                self.ratelimit_config.wake()

    def receipts(self) -> dict[str, dict[str, Any]]:
        assert self.plane is not None
        remote = self.peers.remote_acks() if self.peers is not None else {}
        return merged_receipts(self.plane, remote)

    async def wait_synced(self, timeout: float = 60.0) -> None:
        """Until the initial LIST is in and the first translation is published."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (self.store.synced and self.plane is not None and self.plane.cache.ready):
            if not self.kopf_alive() and self._kopf_thread is not None:
                raise RuntimeError(f"kopf stopped: {self._kopf_error}")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the initial LIST did not complete")
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ admin

    def describe(self) -> dict[str, Any]:
        return {
            "identity": self.options.identity,
            "leader": self.lease.is_leader() if self.lease is not None else True,
            "holder": self.lease.holder if self.lease is not None else self.options.identity,
            "synced": self.store.synced,
            "ready": bool(self.plane and self.plane.cache.ready),
            "kopf_alive": self.kopf_alive(),
            "translations": self.translations,  # MeshStates handed to the control plane
            "plane_generation": self.plane.status.generation if self.plane else 0,  # translations it published
            "status_writes": self.writer.writes if self.writer else 0,
            "status_write_failures": self.writer.failures if self.writer else 0,
            "objects": {k: self.store.count(k) for k in ("Service", "EndpointSlice", "Pod", "TrafficPolicy")},
            "problems": [str(p) for p in (self.snapshot.problems if self.snapshot else [])],
            "peers": self.peers.describe() if self.peers is not None else {},
            "resync": (
                {"rounds": self.resyncer.rounds, "corrected": self.resyncer.corrected, "removed": self.resyncer.removed}
                if self.resyncer is not None
                else None
            ),
        }

    async def _kubez(self, request: web.Request) -> web.Response:
        return web.json_response(self.describe())

    async def _readyz(self, request: web.Request) -> web.Response:
        ready = self.store.synced and bool(self.plane and self.plane.cache.ready) and self.kopf_alive()
        return web.json_response({"ready": ready}, status=200 if ready else 503)


class Wiring(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def run(options: OperatorOptions, op: Operator | None = None, wiring: Wiring | None = None) -> int:
    """Run the operator until SIGTERM/SIGINT; 1 when the watch thread dies (so the pod is restarted).

    ``wiring`` (the in-cluster extras: webhooks, leases, CA Secret) has ``start()``/``stop()`` and runs inside the
    operator's lifetime."""
    import signal

    op = op or Operator(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await op.start()
        if wiring is not None:
            await wiring.start()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            if not op.kopf_alive():
                log.error("the watch thread stopped; exiting so the operator is restarted")
                return 1
    finally:
        if wiring is not None:
            await wiring.stop()
        await op.stop()
    return 0
