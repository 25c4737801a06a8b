"""The operator as the chart runs it: settings from ``MESHWORK_CONFIG``, and what a real cluster needs besides
the watches, xDS and status (:mod:`.operator`):

* the **CA** kept in a Secret of the release namespace, so every replica and every restart issues from one root
  (sidecars keep trusting the control plane after its pod is replaced);
* the **identity service** (:mod:`mesh_operator.identity`: TokenReview + bound pod, then the CA) on HTTPS with the
  control plane's SPIFFE certificate, at the URL the injector gives the agent (``InjectionSettings.identity_url``);
* the **root CA ConfigMap** ``meshwork-root-ca`` published into every namespace labelled for injection (the agent
  trusts it for its first request);
* the **caBundle** of the chart's two webhook configurations (rendered empty) kept equal to the mesh's roots;
* **pods that should have a sidecar and have none** (the webhook was down and failurePolicy is Ignore) reported:
  a Warning Event ``SidecarMissing`` on the pod, a log line, ``/debug/injectionz`` on the admin endpoint and the
  ``meshwork_pods_missing_sidecar`` figure there;
* the **health server** the kubelet probes (``/healthz``, ``/readyz``; plaintext, nothing else on it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import ssl
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from mesh_operator.identity import IdentityService, KubernetesReader, routes
from mesh_operator.kube.config import ClusterConfig
from mesh_operator.kube.errors import ApiError
from mesh_operator.kube.missing import missing_sidecars
from mesh_operator.kube.operator import Operator, OperatorOptions
from mesh_operator.kube.operator import run as run_operator
from mesh_operator.kube.rest import Rest, connection
from xds_server.ca import store as ca_store

log = logging.getLogger("meshwork.incluster")

ROOT_CA_KEY = "ca.pem"
CA_FILES = (ca_store.CERT_FILE, ca_store.KEY_FILE, ca_store.CHAIN_FILE)


# ---------------------------------------------------------------------- the CA in a Secret


async def load_ca(rest: Rest, cfg: ClusterConfig, directory: Path) -> None:
    """Fill ``directory`` with the CA of the Secret ``cfg.ca_secret``; create both when there is none yet.

    Two replicas starting together may both create a root: the API server keeps one (409 for the other), and the
    loser reads the winner's back, so every replica ends with the same CA."""
    path = f"/api/v1/namespaces/{cfg.namespace}/secrets"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = await _get(rest, f"{path}/{cfg.ca_secret}")
    if secret is None and not cfg.ca_external:
        ca_store.load_or_create(directory, cfg.trust_domain)
        data = {
            name: base64.b64encode((directory / name).read_bytes()).decode()
            for name in CA_FILES
            if (directory / name).is_file()
        }
        body = {"metadata": {"name": cfg.ca_secret, "labels": {"app.kubernetes.io/part-of": "meshwork"}}}
        try:
            await rest.create(path, {**body, "type": "Opaque", "data": data})
            log.info("created the mesh CA and stored it in Secret %s/%s", cfg.namespace, cfg.ca_secret)
            return
        except ApiError as e:
            if e.status != 409:
                raise
        secret = await _get(rest, f"{path}/{cfg.ca_secret}")
    if secret is None:
        raise RuntimeError(f"Secret {cfg.namespace}/{cfg.ca_secret} with the CA does not exist")
    data = secret.get("data") or {}
    for name in CA_FILES:
        target = directory / name
        if name in data:
            target.touch(mode=0o600)
            target.write_bytes(base64.b64decode(data[name]))
        elif target.exists():
            target.unlink()
    log.info("loaded the mesh CA from Secret %s/%s", cfg.namespace, cfg.ca_secret)


async def _get(rest: Rest, path: str) -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = await rest.get(path)
        return body
    except ApiError as e:
        if e.status == 404:
            return None
        raise


# ---------------------------------------------------------------------- the wiring


class ClusterWiring:
    def __init__(self, op: Operator, cfg: ClusterConfig, rest: Rest, api_client: Any, *, host: str) -> None:
        self.op, self.cfg, self.rest, self.api_client, self.host = op, cfg, rest, api_client, host
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._tls: tempfile.TemporaryDirectory[str] | None = None
        self._identity_ssl: ssl.SSLContext | None = None
        self._identity_renew_at: datetime | None = None
        #: namespace -> the bundle last published there
        self.published: dict[str, str] = {}
        #: webhook configuration name -> the caBundle last written
        self.bundles: dict[str, str] = {}
        #: pod uid -> (namespace/name, reason) of pods that should have a sidecar and have none
        self.missing: dict[str, tuple[str, str]] = {}
        self.events_posted = 0
        self.identity_port: int | None = None
        self.health_port: int | None = None

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        plane = self.op.plane
        assert plane is not None
        self.health_port = await self._serve(self._health_app(), self.cfg.health_port, None)
        self._tls = tempfile.TemporaryDirectory(prefix="meshwork-identity-")
        self._identity_ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._identity_ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load_identity_cert()
        service = IdentityService(
            KubernetesReader(self.api_client),
            lambda: plane.certs.issuer,
            lambda: plane.certs.bundle.to_pem(),
            trust_domain=self.cfg.trust_domain,
            audience=self.cfg.injection.token_audience,
        )
        app = web.Application(client_max_size=256 * 1024)
        app.add_routes(routes(service))
        self.identity_port = await self._serve(app, self.cfg.identity_port, self._identity_ssl)
        self._tasks = [asyncio.get_running_loop().create_task(self._loop())]
        log.info("identity service on https://%s:%d, health on :%d", self.host, self.identity_port, self.health_port)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for r in self._runners:
            await r.cleanup()
        if self._tls is not None:
            self._tls.cleanup()

    async def _serve(self, app: web.Application, port: int, ctx: ssl.SSLContext | None) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, port, ssl_context=ctx)
        await site.start()
        self._runners.append(runner)
        server = site._server
        return int(server.sockets[0].getsockname()[1]) if server is not None else port  # type: ignore[attr-defined]

    def _load_identity_cert(self) -> None:
        plane = self.op.plane
        assert plane is not None and self._tls is not None and self._identity_ssl is not None
        keypair = plane.certs.issuer.issue_keypair(plane.certs.control_plane_identity(), ttl=timedelta(hours=24))
        d = Path(self._tls.name)
        cert, key = d / "cert.pem", d / "key.pem"
        cert.write_bytes(keypair.chain_pem)
        key.touch(mode=0o600)
        key.write_bytes(keypair.private_key_pem)
        self._identity_ssl.load_cert_chain(cert, key)
        key.unlink()
        self._identity_renew_at = keypair.not_before + (keypair.not_after - keypair.not_before) / 2

    # -------------------------------------------------------------- the periodic work

    async def _loop(self) -> None:
        seen_changes = -1
        last_full = 0.0
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            changes = self.op.store.changes
            # Store changes (namespaces labelled, pods created) are acted on within a second; everything is
            # re-checked every 30 s (someone edited a caBundle or deleted the ConfigMap).
            if self.op.store.synced and (changes != seen_changes or now - last_full > 30):
                full = now - last_full > 30
                seen_changes, last_full = changes, (now if full else last_full)
                for step in (self._ca_bundles, self._root_ca, self._report_missing):
                    try:
                        await step(full)
                    except Exception as e:  # one failed API call must not stop the others, nor the loop
                        log.warning("%s: %s", step.__name__.lstrip("_"), e)
            if self._identity_renew_at is not None and datetime.now(UTC) >= self._identity_renew_at:
                self._load_identity_cert()
            await asyncio.sleep(1.0)

    def _bundle(self) -> str:
        assert self.op.plane is not None
        return self.op.plane.certs.bundle.to_pem().decode()

    async def _ca_bundles(self, full: bool) -> None:
        bundle = base64.b64encode(self._bundle().encode()).decode()
        kinds = (
            ("validatingwebhookconfigurations", self.cfg.validating_configuration),
            ("mutatingwebhookconfigurations", self.cfg.mutating_configuration),
        )
        for plural, name in kinds:
            if not name or (self.bundles.get(plural) == bundle and not full):
                continue
            path = f"/apis/admissionregistration.k8s.io/v1/{plural}/{name}"
            body = await _get(self.rest, path)
            if body is None:
                continue
            hooks = body.get("webhooks") or []
            if all((h.get("clientConfig") or {}).get("caBundle") == bundle for h in hooks):
                self.bundles[plural] = bundle
                continue
            for h in hooks:
                h.setdefault("clientConfig", {})["caBundle"] = bundle
            await self.rest.replace(path, body)
            self.bundles[plural] = bundle
            log.info("caBundle of %s %s set to the mesh's roots", plural, name)

    def _injected_namespaces(self) -> list[str]:
        s = self.cfg.injection
        out = []
        for ns in self.op.store.objects("Namespace"):
            name = str((ns.get("metadata") or {}).get("name"))
            labels = (ns.get("metadata") or {}).get("labels") or {}
            if name in s.never_inject or name == s.mesh_namespace:
                continue
            if labels.get("meshwork.io/inject") == "enabled":
                out.append(name)
        return sorted(out)

    async def _root_ca(self, full: bool) -> None:
        bundle = self._bundle()
        name = self.cfg.injection.ca_configmap
        for ns in self._injected_namespaces():
            if self.published.get(ns) == bundle and not full:
                continue
            path = f"/api/v1/namespaces/{ns}/configmaps"
            current = await _get(self.rest, f"{path}/{name}")
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "meshwork"}},
                "data": {ROOT_CA_KEY: bundle},
            }
            if current is None:
                await self.rest.create(path, body)
                log.info("published the mesh's roots as ConfigMap %s/%s", ns, name)
            elif (current.get("data") or {}).get(ROOT_CA_KEY) != bundle:
                body["metadata"]["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
                await self.rest.replace(f"{path}/{name}", body)
                log.info("updated the mesh's roots in ConfigMap %s/%s", ns, name)
            self.published[ns] = bundle

    async def _report_missing(self, full: bool) -> None:
        pods = self.op.store.objects("Pod")
        found = missing_sidecars(pods, self.cfg.injection, self.op.store.namespace_labels)
        current = {m.uid: (m.key, m.reason) for m in found}
        for m in found:
            if m.uid in self.missing:
                continue
            log.warning("pod %s has no sidecar: %s", m.key, m.reason)
            self.missing[m.uid] = (m.key, m.reason)
            await self._event(m.namespace, m.name, m.uid, m.reason)
        for uid in set(self.missing) - set(current):
            del self.missing[uid]

    async def _event(self, namespace: str, name: str, uid: str, message: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": name, "uid": uid},
            "reason": "SidecarMissing",
            "message": message,
            "type": "Warning",
            "source": {"component": "meshwork-control-plane"},
            "reportingComponent": "meshwork.io/control-plane",
            "reportingInstance": self.op.options.identity,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self.rest.create(f"/api/v1/namespaces/{namespace}/events", body)
        self.events_posted += 1

    # -------------------------------------------------------------- HTTP

    def _health_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        alive = self.op.kopf_alive()
        return web.json_response({"alive": alive}, status=200 if alive else 503)

    async def _readyz(self, request: web.Request) -> web.Response:
        op = self.op
        ready = op.store.synced and bool(op.plane and op.plane.cache.ready) and op.kopf_alive()
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    def admin_routes(self) -> dict[str, Any]:
        return {"/debug/injectionz": self._injectionz, "/debug/incluster": self._describe}

    def describe(self) -> dict[str, Any]:
        return {
            "published": sorted(self.published),
            "caBundles": sorted(self.bundles),
            "missingSidecars": len(self.missing),
            "events": self.events_posted,
            "identityPort": self.identity_port,
        }

    async def _describe(self, request: web.Request) -> web.Response:
        return web.json_response(self.describe())

    async def _injectionz(self, request: web.Request) -> web.Response:
        pods = [{"pod": k, "reason": r} for k, r in sorted(self.missing.values())]
        return web.json_response({"meshwork_pods_missing_sidecar": len(pods), "pods": pods})


# ---------------------------------------------------------------------- the process


def _api_client(kubeconfig: str | None, context: str | None) -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()
    if kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return client.ApiClient(cfg)


async def run(cfg: ClusterConfig, options: OperatorOptions, *, host: str = "0.0.0.0") -> int:
    """Run the operator with the cluster wiring until SIGTERM/SIGINT."""
    conn = connection(options.kubeconfig, options.context)
    rest = Rest(conn)
    state = Path(os.environ.get("MESHWORK_STATE_DIR") or tempfile.gettempdir()) / "meshwork"
    ca_dir = state / "ca"
    await load_ca(rest, cfg, ca_dir)
    options.ca_dir = ca_dir
    op = Operator(options)
    wiring = ClusterWiring(op, cfg, rest, _api_client(options.kubeconfig, options.context), host=host)
    options.admin_routes.update(wiring.admin_routes())
    try:
        return await run_operator(options, op, wiring)
    finally:
        await rest.close()
