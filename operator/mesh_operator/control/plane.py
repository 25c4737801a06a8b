"""The control plane as one asyncio component: ``apply(state)`` in, ACKed snapshots out.

Every change is debounced (~100 ms after the last change, at most ~1 s after the first), translated by the pure
pipeline, and each proxy's snapshot is replaced in the cache; the ADS server pushes what changed. The cache's
ready gate opens only after the first complete translation, so a restarted control plane never answers a proxy
with a partial snapshot.

The xDS server is mTLS-only: a proxy proves its identity with a certificate from the mesh CA, and
:meth:`authorize` serves a node's resources only to a peer whose SPIFFE ID is that node's identity. A secret is
therefore never handed to a proxy of another identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from mesh_operator.control.build import Built, Incremental, build
from mesh_operator.control.certs import CertificateManager, workload_ttl
from mesh_operator.control.provenance import culprits
from mesh_operator.control.publish import Publisher
from mesh_operator.control.rotation import RootRotator, certz
from mesh_operator.translate import MeshState, PolicyKey, PolicyOutcome, Rejection
from mesh_operator.translate.scope import missing_services
from mesh_operator.translate.state import Policy
from xds_server.admin import AdminServer
from xds_server.ads import AdsServer, make_server
from xds_server.cache import SnapshotCache
from xds_server.debounce import Debouncer
from xds_server.errors import RotationError
from xds_server.preflight import Preflight, reason_line
from xds_server.snapshot import SECRET
from xds_server.sync import SyncTracker

log = logging.getLogger(__name__)


@dataclass
class PlaneStatus:
    """What the last translation decided, for status reporting."""

    generation: int = 0
    outcomes: Mapping[PolicyKey, PolicyOutcome] = field(default_factory=dict)
    #: node id -> snapshot version it should have
    desired: Mapping[str, str] = field(default_factory=dict)
    #: node id -> the policies (``Kind/ns/name``) its config carries
    policies_by_node: Mapping[str, set[str]] = field(default_factory=dict)
    #: control-plane problems of the last translation (refused sources, proxies that keep old config, ...)
    problems: list[str] = field(default_factory=list)
    #: node id -> why it keeps the config it had (translation failed, certificate, pre-flight, ...)
    failed: dict[str, str] = field(default_factory=dict)
    #: node id -> Envoy resource name -> the policies it carries (to name the culprit of a NACK)
    resources_by_node: Mapping[str, Mapping[str, set[str]]] = field(default_factory=dict)
    #: what the mesh's config asks for but cannot have yet (a sidecarEgress Service that does not exist, ...)
    warnings: list[str] = field(default_factory=list)


class ControlPlane:
    def __init__(
        self,
        certs: CertificateManager,
        *,
        xds_host: str = "127.0.0.1",
        xds_port: int = 0,
        admin_host: str = "127.0.0.1",
        admin_port: int = 0,
        debounce: float = 0.1,
        max_debounce: float = 1.0,
        ca_dir: Path | None = None,
        preflight: Preflight | None = None,
    ) -> None:
        self.certs = certs
        self.preflight = preflight
        self.cache = SnapshotCache()
        self.sync = SyncTracker()
        self.ads = AdsServer(self.cache, self.sync, authorize=self.authorize)
        self.admin = AdminServer(self.cache, self.sync, host=admin_host, port=admin_port)
        self.admin.app.router.add_get("/debug/policyz", self._policyz)
        self.rotator = RootRotator(self, ca_dir)
        self.admin.app.router.add_get("/debug/certz", self._certz)
        self.admin.app.router.add_post("/debug/rotate-root", self._rotate_root)
        self.admin.app.router.add_post("/debug/rotate-identity", self._rotate_identity)
        self.xds_host, self.xds_port = xds_host, xds_port
        self.status = PlaneStatus()
        self._state: MeshState | None = None
        self._last_good: dict[PolicyKey, Policy] = {}
        self._rejected: dict[PolicyKey, Rejection] = {}
        self._source_problems: list[str] = []
        self._identities: Mapping[str, str] = {}
        self._debouncer = Debouncer(self._rebuild, delay=debounce, max_delay=max_debounce)
        #: kept between translations so that each re-derives only what changed (O(changed), same result)
        self._incremental = Incremental()
        #: assembles and caches each proxy's snapshot; walks only the changed proxies when it can (O(changed))
        self._publisher = Publisher(self.certs, self.cache)
        self._server: Any = None
        self._tls_dir: tempfile.TemporaryDirectory[str] | None = None
        self._ssl: ssl.SSLContext | None = None
        self._renewals: asyncio.Task[None] | None = None
        self._server_cert_renew_at: datetime | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._tls_dir = tempfile.TemporaryDirectory(prefix="meshwork-xds-")
        os.chmod(self._tls_dir.name, 0o700)
        self._ssl = self._server_ssl()
        self._server = make_server(self.ads)
        await self._server.start(self.xds_host, self.xds_port, ssl=self._ssl, reuse_address=True, backlog=4096)
        self.xds_port = self._server._server.sockets[0].getsockname()[1]
        await self.admin.start()
        self._renewals = asyncio.get_running_loop().create_task(self._renewal_loop())
        log.info(
            "xDS (mTLS) on %s:%d, admin on http://%s:%d", self.xds_host, self.xds_port, self.admin.host, self.admin.port
        )

    async def stop(self) -> None:
        if self._renewals is not None:
            self._renewals.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewals
        await self._debouncer.aclose()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.admin.close()
        if self._tls_dir is not None:
            self._tls_dir.cleanup()

    # ---------------------------------------------------------------- input

    def apply(self, state: MeshState) -> None:
        """Take a new view of the mesh; translation follows after the debounce delay."""
        self._state = state
        self.certs.set_leaf_ttl(workload_ttl(state.mesh))
        self._debouncer.trigger()

    def set_source_problems(self, problems: list[str]) -> None:
        """Problems of the source itself (a file that cannot be read or parsed, ...): shown by ``meshctl status``
        until the source is fixed."""
        self._source_problems = list(problems)

    async def wait_translated(self) -> None:
        await self._debouncer.wait_idle()

    def retranslate(self) -> None:
        """Publish again from the current state (after a certificate or trust bundle change)."""
        if self._state is not None:
            self._debouncer.trigger()

    # ---------------------------------------------------------------- translation

    async def _rebuild(self) -> None:
        state = self._state
        if state is None:
            return
        # Translation, serialization and the pre-flight check run in a worker thread: pushes of built snapshots,
        # ACKs and the admin endpoint keep being served meanwhile.
        built = await asyncio.to_thread(
            build, state, dict(self._last_good), dict(self._rejected), self.preflight, self._incremental
        )
        self._publish(built, state)

    def _publish(self, built: Built, state: MeshState) -> None:
        translated = built.translation
        published = self._publisher.publish(built)
        self._identities = published.identities
        failed = published.failed
        problems: list[str] = list(self._source_problems)
        # What is now in force becomes the fallback of a later bad version; verdicts on old versions are dropped.
        current = self._incremental.translator.current(state)
        refused = {PolicyKey(r.kind, r.namespace, r.name) for r in state.refused}
        changed = self._incremental.translator.take_in_force_changes()
        if changed is None:
            present = current.keys() | refused
            self._last_good = {k: p for k, p in {**self._last_good, **translated.in_force}.items() if k in present}
        else:  # the same, for the policies the translation re-resolved (O(changed)); the others are as they were
            for k in changed:
                if k in translated.in_force:
                    self._last_good[k] = translated.in_force[k]
                elif k not in current and k not in refused:
                    self._last_good.pop(k, None)
        self._rejected = built.rejected
        problems += [f"proxy {node}: {why}" for node, why in sorted(failed.items())]
        for problem in problems:
            log.error("%s", problem)
        warnings = [f"Mesh/{state.mesh.metadata.name}: {v.path}: {v.message}" for v in missing_services(state)]
        for warning in set(warnings) - set(self.status.warnings):  # once, not at every translation
            log.warning("%s", warning)
        self.status = PlaneStatus(
            self.status.generation + 1,
            translated.outcomes,
            published.desired,
            published.policies_by_node,
            problems,
            failed,
            published.resources_by_node,
            warnings,
        )
        if not self.cache.ready:
            self.cache.mark_ready()
        log.info(
            "translated %d proxies (generation %d, %d round(s), %d walked, pre-flight %.0f ms)",
            len(published.desired),
            self.status.generation,
            built.rounds,
            published.walked,
            built.preflight_seconds * 1000,
        )

    # ---------------------------------------------------------------- security

    def authorize(self, node_id: str, peer: str | None, type_url: str, name: str) -> bool:
        """Serve a node's resources only to the proxy holding that node's identity."""
        expected = self._identities.get(node_id)
        if expected is None or peer != expected:
            if type_url == SECRET:
                log.warning("refused secret %s of %s to peer %s", name, node_id, peer)
            return False
        return True

    def identity_of(self, node_id: str) -> str | None:
        return self._identities.get(node_id)

    def trust_bundle_changed(self) -> None:
        """Trust every root of the bundle for xDS clients too (a root rotation adds one). An SSLContext cannot
        forget a root: a removed root stays trusted here until restart; SDS peers drop it at once."""
        if self._ssl is not None:
            self._ssl.load_verify_locations(cadata=self.certs.bundle.to_pem().decode())

    def _server_ssl(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.set_alpn_protocols(["h2"])
        self._load_server_cert(ctx)
        return ctx

    def _load_server_cert(self, ctx: ssl.SSLContext) -> None:
        assert self._tls_dir is not None
        identity = self.certs.control_plane_identity()
        keypair = self.certs.issuer.issue_keypair(identity, ttl=self.certs.leaf_ttl)
        d = Path(self._tls_dir.name)
        cert, key = d / "cert.pem", d / "key.pem"
        cert.write_bytes(keypair.chain_pem)
        key.touch(mode=0o600)
        key.write_bytes(keypair.private_key_pem)
        ctx.load_cert_chain(cert, key)
        key.unlink()
        ctx.load_verify_locations(cadata=self.certs.bundle.to_pem().decode())
        self._server_cert_renew_at = keypair.not_before + (keypair.not_after - keypair.not_before) / 2

    async def _renewal_loop(self) -> None:
        """Reissue workload certificates when due, and the server's own certificate."""
        while True:
            now = datetime.now(UTC)
            due = [t for t in (self.certs.next_renewal(), self._server_cert_renew_at) if t is not None]
            wait = max(0.2, min(((t - now).total_seconds() for t in due), default=5.0))
            await asyncio.sleep(min(wait, 5.0))
            now = datetime.now(UTC)
            if self._server_cert_renew_at is not None and now >= self._server_cert_renew_at and self._ssl:
                self._load_server_cert(self._ssl)
            renewal = self.certs.next_renewal()
            if renewal is not None and now >= renewal and self._state is not None:
                self._debouncer.trigger()

    # ---------------------------------------------------------------- status

    def receipts(self) -> dict[str, dict[str, Any]]:
        """Per policy: how many affected proxies run the config carrying it, and which reject it.

        A NACK is pinned on the policies behind the resources Envoy names in its error; when it names none that
        carry a policy, every policy of that proxy is counted as rejected there (``attributed: false``)."""
        proxies = self.sync.proxies()
        acked = {node: p.acked_version for node, p in proxies.items()}
        nacks = {node: n.error for node, p in proxies.items() for t in p.types.values() if (n := t.rejecting)}
        blamed: dict[str, set[str]] = {}
        attributed: dict[str, bool] = {}
        for node, error in nacks.items():
            found = culprits(error, self.status.resources_by_node.get(node, {}))
            attributed[node] = bool(found)
            blamed[node] = found or self.status.policies_by_node.get(node, set())
        out: dict[str, dict[str, Any]] = {}
        for key, outcome in self.status.outcomes.items():
            ref = str(key)
            nodes = sorted(n for n, refs in self.status.policies_by_node.items() if ref in refs)
            rejected = {n: nacks[n] for n in nodes if ref in blamed.get(n, ())}
            applied = [
                n
                for n in nodes
                if n not in rejected
                and n not in self.status.failed
                and (acked.get(n) == self.status.desired.get(n) or n in nacks)
            ]
            out[ref] = {
                "accepted": outcome.condition(),
                "proxies": len(nodes),
                "applied": len(applied),
                "rejected": rejected,
                "rejected_reason": {n: reason_line(e) for n, e in rejected.items()},
                "attributed": all(attributed.get(n, True) for n in rejected),
                "summary": _summary(outcome.accepted, len(nodes), len(applied), rejected),
            }
        return out

    async def _policyz(self, request: web.Request) -> web.Response:
        """Every policy: Accepted, and its delivery receipt (proxies applied / affected, rejections)."""
        return web.json_response(
            {
                "generation": self.status.generation,
                "desired": dict(self.status.desired),
                "problems": self.status.problems,
                "warnings": self.status.warnings,
                "failed": self.status.failed,
                "policies": self.receipts(),
                "preflight": self.preflight.stats.as_dict() if self.preflight else None,
            }
        )

    async def _certz(self, request: web.Request) -> web.Response:
        """Per identity serial, issuer, not-after, time left; the roots with an expiry warning; the rotation."""
        return web.json_response(certz(self, self.rotator))

    async def _rotate_root(self, request: web.Request) -> web.Response:
        """``?step=next`` (default) or a step name; 409 with the reason when the step is refused."""
        step = request.query.get("step", "next")
        try:
            status = await self.rotator.advance(None if step == "next" else step)
        except ValueError:
            return web.json_response({"error": f"unknown step {step!r}"}, status=400)
        except RotationError as e:
            return web.json_response({"error": str(e), "rotation": self.rotator.status()}, status=409)
        return web.json_response(status)

    async def _rotate_identity(self, request: web.Request) -> web.Response:
        """``?identity=spiffe://...``: issue a new leaf for that identity now."""
        identity = request.query.get("identity", "")
        if identity not in self.certs.leaves():
            return web.json_response({"error": f"no proxy has the identity {identity!r}"}, status=404)
        self.certs.reissue(identity)
        self.retranslate()
        await self.wait_translated()
        nodes = sorted(n for n, i in self._identities.items() if i == identity)
        serial = f"{self.certs.leaves()[identity].serial_number:x}"
        return web.json_response({"identity": identity, "serial": serial, "proxies": nodes})


def _summary(accepted: bool, affected: int, applied: int, rejected: Mapping[str, str]) -> str:
    """The human line of a receipt. It never says a policy is in force where a proxy rejected it."""
    if not accepted:
        return "not accepted"
    if rejected:
        return f"rejected by {len(rejected)} of {affected} proxies"
    if affected == 0:
        return "accepted; affects no proxy"
    if applied == affected:
        return f"in force on {affected}/{affected} proxies"
    return f"applied by {applied} of {affected} proxies so far"
