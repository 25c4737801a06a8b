"""The xDS server's admin HTTP endpoints (aiohttp), bound to 127.0.0.1 by default.

- ``GET /healthz``: ``ok`` (and whether the cache's ready gate is open)
- ``GET /debug/syncz``: the sync table (JSON)
- ``GET /debug/config_dump?node=ID[&type=Cluster|type URL]``: the resources held for a node, decoded to proto-JSON
  (slow: decodes with envoy-data-plane; secrets' private material is redacted)
- ``GET /metrics``: Prometheus text exposition (hand-written, no client library)
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from xds_server.cache import SnapshotCache
from xds_server.snapshot import SECRET, TYPE_ORDER
from xds_server.sync import SyncTracker, short_type
from xds_server.wire import message_class

_REDACT_KEYS = frozenset({"privateKey", "password", "secret", "sessionTicketKeys", "inlineBytes", "inlineString"})


def redact(doc: Any) -> Any:
    """Replace secret material in a proto-JSON document with ``"[redacted]"``."""
    if isinstance(doc, dict):
        return {k: "[redacted]" if k in _REDACT_KEYS else redact(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [redact(v) for v in doc]
    return doc


def _resolve_type(arg: str) -> str | None:
    for t in TYPE_ORDER:
        if arg in (t, short_type(t)) or arg.lower() == short_type(t).lower():
            return t
    return None


def config_dump(cache: SnapshotCache, node_id: str, type_filter: str | None = None) -> dict[str, Any] | None:
    snap = cache.snapshot(node_id)
    if snap is None:
        return None
    out: dict[str, Any] = {"node": node_id, "version": snap.version, "ready": cache.ready, "resources": {}}
    for t in TYPE_ORDER:
        if type_filter is not None and t != type_filter:
            continue
        cls = message_class(t)
        items = []
        for name, r in snap.of_type(t).items():
            doc = cls.FromString(r.body).to_dict()  # type: ignore[attr-defined]
            items.append({"name": name, "version": r.version, "resource": redact(doc) if t == SECRET else doc})
        out["resources"][short_type(t)] = {"version": snap.type_version(t), "items": items}
    return out


class AdminServer:
    def __init__(self, cache: SnapshotCache, sync: SyncTracker, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.cache = cache
        self.sync = sync
        self.host = host
        self.port = port
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/debug/syncz", self._syncz)
        self.app.router.add_get("/debug/config_dump", self._config_dump)
        self.app.router.add_get("/metrics", self._metrics)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # aiohttp keeps the asyncio server here; read the bound port for port=0
        if self.port == 0 and server is not None:
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> AdminServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n" if self.cache.ready else "ok (waiting for the first snapshot)\n")

    async def _syncz(self, request: web.Request) -> web.Response:
        return web.json_response(self.sync.table(), dumps=lambda d: json.dumps(d, indent=1, sort_keys=True))

    async def _config_dump(self, request: web.Request) -> web.Response:
        node = request.query.get("node")
        if not node:
            return web.json_response({"error": "node=ID is required", "nodes": list(self.cache.nodes())}, status=400)
        type_filter = None
        if "type" in request.query:
            type_filter = _resolve_type(request.query["type"])
            if type_filter is None:
                return web.json_response({"error": f"unknown type {request.query['type']!r}"}, status=400)
        dump = config_dump(self.cache, node, type_filter)
        if dump is None:
            return web.json_response({"error": f"no snapshot for node {node!r}"}, status=404)
        return web.json_response(dump, dumps=lambda d: json.dumps(d, indent=1))

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.sync.render_prometheus(), content_type="text/plain", charset="utf-8")
