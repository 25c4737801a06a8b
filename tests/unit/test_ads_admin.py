"""The admin endpoints: health, sync table, config dump (decoded, secrets redacted) and metrics."""

from __future__ import annotations

import aiohttp
import pytest

from xds_server.admin import AdminServer
from xds_server.cache import SnapshotCache
from xds_server.snapshot import CLUSTER
from xds_server.sync import SyncTracker
from xds_server.testing.resources import generic_secret, simple_snapshot

pytestmark = pytest.mark.timeout(30)


async def test_admin_endpoints():
    cache, sync = SnapshotCache(), SyncTracker()
    cache.set_snapshot("n1", simple_snapshot(8080, 10000, secret=generic_secret("s", "hunter2")))
    sid = sync.stream_opened("n1", "sotw")
    sync.sent("n1", sid, CLUSTER, "v1")
    sync.nacked("n1", sid, CLUSTER, "v1", "bad")
    async with AdminServer(cache, sync) as admin, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{admin.port}"
        async with http.get(base + "/healthz") as r:
            assert r.status == 200
            assert "waiting" in await r.text()
        async with http.get(base + "/debug/syncz") as r:
            table = await r.json()
            assert table["proxies"]["n1"]["types"]["Cluster"]["last_nack"]["error"] == "bad"
        async with http.get(base + "/debug/config_dump", params={"node": "n1"}) as r:
            dump = await r.json()
            assert dump["resources"]["Cluster"]["items"][0]["resource"]["name"] == "backend"
            assert "hunter2" not in await r.text()
        async with http.get(base + "/debug/config_dump", params={"node": "n1", "type": "listener"}) as r:
            assert list((await r.json())["resources"]) == ["Listener"]
        async with http.get(base + "/debug/config_dump", params={"node": "nope"}) as r:
            assert r.status == 404
        async with http.get(base + "/metrics") as r:
            text = await r.text()
            assert 'meshwork_xds_nacks_total{type="Cluster"} 1' in text
            assert "meshwork_xds_connected_proxies 1" in text
