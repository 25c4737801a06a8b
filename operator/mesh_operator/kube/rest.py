"""A small async client for the few Kubernetes REST calls the operator makes itself (status, Leases).

kopf does the watching; this does the writing, on the control plane's event loop, with one pooled aiohttp
session. Credentials come from a kubeconfig (``--kubeconfig``/``--context``) or the pod's service account,
loaded once by the official client's loaders and shared with kopf's login handler (:func:`connection`).
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp

from mesh_operator.kube.errors import ApiError, KubeError


@dataclass(frozen=True)
class Connection:
    server: str
    ca_path: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    token: str | None = None
    verify: bool = True
    namespace: str = "default"

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_path) if self.verify else ssl._create_unverified_context()
        if self.cert_path and self.key_path:
            ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx


def connection(kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """Credentials from a kubeconfig (or ``$KUBECONFIG``), else the in-cluster service account."""
    from kubernetes import client, config

    cfg = client.Configuration()
    namespace = "default"
    try:
        if kubeconfig or not _in_cluster():
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)  # type: ignore[no-untyped-call]
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
            if context:
                contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
                active = next((c for c in contexts if c["name"] == context), active)
            namespace = (active or {}).get("context", {}).get("namespace") or "default"
        else:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
                namespace = f.read().strip()
    except (config.ConfigException, OSError) as e:
        raise KubeError(f"cannot load Kubernetes credentials: {e}") from e
    token = None
    auth = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
    if auth:
        # kubeconfigs give "Bearer <token>"; the in-cluster loader gives "bearer <token>"
        scheme, _, rest = auth.partition(" ")
        token = (rest if scheme.lower() == "bearer" and rest else auth).strip()
    return Connection(
        server=cfg.host.rstrip("/"),
        ca_path=cfg.ssl_ca_cert,
        cert_path=cfg.cert_file,
        key_path=cfg.key_file,
        token=token,
        verify=bool(cfg.verify_ssl),
        namespace=namespace,
    )


def _in_cluster() -> bool:
    import os

    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not os.environ.get("KUBECONFIG")


class Rest:
    """JSON in, JSON out; an error status raises :class:`ApiError` with the Status message."""

    def __init__(self, conn: Connection, *, timeout: float = 5.0, limit: int = 16) -> None:
        self.conn = conn
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        #: requests sent, by method (for benchmarks and tests)
        self.calls: dict[str, int] = {}

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"Authorization": f"Bearer {self.conn.token}"} if self.conn.token else {}
            connector = aiohttp.TCPConnector(ssl=self.conn.ssl_context(), limit=self._limit)
            self._session = aiohttp.ClientSession(connector=connector, headers=headers, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json") -> Any:
        session = await self.session()
        self.calls[method] = self.calls.get(method, 0) + 1
        data = None if body is None else json.dumps(body)
        try:
            async with session.request(
                method, self.conn.server + path, data=data, headers={"Content-Type": content_type}
            ) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    try:
                        message = json.loads(text).get("message", text)
                    except ValueError:
                        message = text[:500]
                    raise ApiError(method, path, resp.status, message)
                return json.loads(text) if text else None
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ApiError(method, path, 0, f"{type(e).__name__}: {e}") from e

    async def get(self, path: str) -> Any:
        return await self.request("GET", path)

    async def create(self, path: str, body: Any) -> Any:
        return await self.request("POST", path, body)

    async def replace(self, path: str, body: Any) -> Any:
        return await self.request("PUT", path, body)

    async def merge_patch(self, path: str, body: Any) -> Any:
        return await self.request("PATCH", path, body, content_type="application/merge-patch+json")
