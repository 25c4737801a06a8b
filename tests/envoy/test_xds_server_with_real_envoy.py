"""A real Envoy takes its whole config from our ADS server (SotW and delta) and serves real traffic through it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpclib.server
import pytest

from xds_server.ads import AdsServer, make_server
from xds_server.cache import SnapshotCache
from xds_server.ports import free_port
from xds_server.snapshot import CLUSTER, LISTENER, Snapshot
from xds_server.sync import SyncTracker
from xds_server.testing.envoy import EnvoyProcess, ads_bootstrap
from xds_server.testing.resources import bad_listener, eds_cluster, simple_snapshot
from xds_server.testing.server import XdsServerProcess, write_snapshots

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(120)]


@dataclass
class Plane:
    cache: SnapshotCache
    sync: SyncTracker
    server: grpclib.server.Server
    port: int


@pytest.fixture
async def plane() -> AsyncIterator[Plane]:
    cache, sync = SnapshotCache(ready=True), SyncTracker()
    server = make_server(AdsServer(cache, sync))
    await server.start("127.0.0.1", 0)
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Plane(cache, sync, server, port)
    finally:
        server.close()
        await server.wait_closed()


async def get(http: aiohttp.ClientSession, port: int) -> tuple[int, str, str]:
    async with http.get(f"http://127.0.0.1:{port}/x") as r:
        return r.status, await r.text(), r.headers.get("x-meshwork-tag", "")


async def eventually(cond, timeout: float = 20.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = await cond()
            if got:
                return got
        except (aiohttp.ClientError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_envoy_takes_its_config_over_ads_serves_traffic_and_follows_updates(plane, upstream, delta):
    listener_port = free_port()
    plane.cache.set_snapshot("proxy-1", simple_snapshot(upstream, listener_port, tag="v1"))
    async with (
        EnvoyProcess(ads_bootstrap("proxy-1", plane.port, delta=delta)) as envoy,
        aiohttp.ClientSession() as http,
    ):
        await envoy.wait_ready_async()
        assert await get(http, listener_port) == (200, "hello", "v1")

        plane.cache.set_snapshot("proxy-1", simple_snapshot(upstream, listener_port, tag="v2"))
        await eventually(lambda: _tag_is(http, listener_port, "v2"), what="the v2 route")

        want = plane.cache.get("proxy-1").version  # type: ignore[union-attr]
        await eventually(_async(lambda: plane.sync.proxies()["proxy-1"].acked_version == want), what="full ACK")
        row = plane.sync.proxies()["proxy-1"]
        assert row.kind == ("delta" if delta else "sotw")
        assert all(t.last_nack is None for t in row.types.values())
        assert plane.sync.convergence.count >= 1


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_a_resource_envoy_rejects_is_tracked_as_a_nack_and_envoy_keeps_its_old_config(plane, upstream, delta):
    listener_port = free_port()
    plane.cache.set_snapshot("proxy-1", simple_snapshot(upstream, listener_port, tag="v1"))
    async with (
        EnvoyProcess(ads_bootstrap("proxy-1", plane.port, delta=delta)) as envoy,
        aiohttp.ClientSession() as http,
    ):
        await envoy.wait_ready_async()
        bad = simple_snapshot(upstream, listener_port, tag="v1", bad=bad_listener("broken", free_port()))
        plane.cache.set_snapshot("proxy-1", bad)

        def nacked() -> bool:
            t = plane.sync.proxies()["proxy-1"].types.get(LISTENER)
            return t is not None and t.last_nack is not None

        await eventually(_async(nacked), what="the LDS NACK")
        nack = plane.sync.proxies()["proxy-1"].types[LISTENER].last_nack
        assert nack is not None
        assert "not-an-ip" in nack.error  # Envoy's wording changes between versions: match a substring
        assert plane.sync.nacks[LISTENER] >= 1
        assert not plane.sync.proxies()["proxy-1"].in_sync
        assert await get(http, listener_port) == (200, "hello", "v1")
        assert envoy.stats()["listener_manager.lds.update_rejected"] >= 1


async def test_killing_the_server_loses_no_requests_and_envoy_reconnects(tmp_path: Path, upstream):
    listener_port = free_port()
    snapshots = tmp_path / "snapshots.json"
    write_snapshots(snapshots, [(["proxy-1"], simple_snapshot(upstream, listener_port, tag="v1"))])
    server = XdsServerProcess(snapshots, admin=True).start()
    failures: list[str] = []
    ok = 0
    stop = asyncio.Event()

    async def traffic(http: aiohttp.ClientSession) -> None:
        nonlocal ok
        while not stop.is_set():
            try:
                status, _, _ = await get(http, listener_port)
                if status == 200:
                    ok += 1
                else:
                    failures.append(str(status))
            except (aiohttp.ClientError, OSError) as e:
                failures.append(repr(e))
            await asyncio.sleep(0.005)

    try:
        async with (
            EnvoyProcess(ads_bootstrap("proxy-1", server.port)) as envoy,
            aiohttp.ClientSession() as http,
        ):
            await envoy.wait_ready_async()
            task = asyncio.create_task(traffic(http))
            await asyncio.sleep(0.5)
            server.kill()
            await envoy.wait_for_async(lambda e: e.stats().get("control_plane.connected_state") == 0, what="disconnect")
            await asyncio.sleep(1.0)
            connects_before = envoy.stats().get("cluster.meshwork-xds.upstream_cx_total", 0)
            write_snapshots(snapshots, [(["proxy-1"], simple_snapshot(upstream, listener_port, tag="v2"))])
            await asyncio.to_thread(server.start)  # same port as before
            await envoy.wait_for_async(lambda e: e.stats().get("control_plane.connected_state") == 1, what="reconnect")
            assert envoy.stats()["cluster.meshwork-xds.upstream_cx_total"] > connects_before  # type: ignore[operator]
            await eventually(lambda: _tag_is(http, listener_port, "v2"), what="config from the restarted server")
            await asyncio.sleep(0.3)
            stop.set()
            await task
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            server.stop()
    assert failures == []
    assert ok > 50


async def _tag_is(http: aiohttp.ClientSession, port: int, tag: str) -> bool:
    return (await get(http, port))[2] == tag


def _async(fn):  # type: ignore[no-untyped-def]
    async def run() -> object:
        return fn()

    return run


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_moving_a_route_to_a_new_cluster_and_removing_the_old_one_fails_no_request(plane, upstream, delta):
    """Make-before-break: the new cluster and its endpoints arrive before the route, the old cluster leaves after."""
    listener_port = free_port()
    plane.cache.set_snapshot("proxy-1", simple_snapshot(upstream, listener_port, cluster="blue", tag="blue"))
    failures: list[str] = []
    stop = asyncio.Event()

    async def traffic(http: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            try:
                status, _, _ = await get(http, listener_port)
                if status != 200:
                    failures.append(str(status))
            except (aiohttp.ClientError, OSError) as e:
                failures.append(repr(e))
            await asyncio.sleep(0.002)

    async with (
        EnvoyProcess(ads_bootstrap("proxy-1", plane.port, delta=delta)) as envoy,
        aiohttp.ClientSession() as http,
    ):
        await envoy.wait_ready_async()
        task = asyncio.create_task(traffic(http))
        try:
            for i, color in enumerate(["green", "blue", "green", "blue"]):
                plane.cache.set_snapshot(
                    "proxy-1", simple_snapshot(upstream, listener_port, cluster=f"{color}-{i}", tag=color)
                )
                await eventually(lambda c=color: _tag_is(http, listener_port, c), what=f"the {color} route")
                want = plane.cache.get("proxy-1").version  # type: ignore[union-attr]
                await eventually(_async(lambda w=want: plane.sync.proxies()["proxy-1"].acked_version == w))
            clusters = envoy.config_dump("dynamic_active_clusters")
            names = [c["cluster"]["name"] for c in clusters["configs"]]
            assert names == ["blue-3"]  # every old cluster was removed in the end
        finally:
            stop.set()
            await task
    assert failures == []


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_a_changed_cluster_with_unchanged_endpoints_is_applied_within_a_second(plane, upstream, delta):
    # Envoy rebuilds an updated EDS cluster and keeps it warming until it gets that cluster's endpoints; unless the
    # server resends them, the update (and its ACK) waits out Envoy's 15 s initial-fetch timeout.
    listener_port = free_port()
    plane.cache.set_snapshot("proxy-1", simple_snapshot(upstream, listener_port, tag="v1"))
    async with EnvoyProcess(ads_bootstrap("proxy-1", plane.port, delta=delta)) as envoy:
        await envoy.wait_ready_async()
        updated = simple_snapshot(upstream, listener_port, tag="v1")
        items = [r for t, by_name in updated.resources.items() if t != CLUSTER for r in by_name.values()]
        plane.cache.set_snapshot(
            "proxy-1", Snapshot.from_resources([*items, eds_cluster("backend", connect_timeout="2s")])
        )
        want = plane.cache.get("proxy-1").version  # type: ignore[union-attr]
        start = time.monotonic()
        await eventually(
            _async(lambda: plane.sync.proxies()["proxy-1"].acked_version == want), timeout=10, what="the ACK"
        )
        assert time.monotonic() - start < 1.0
        assert envoy.stats().get("cluster_manager.warming_clusters", 0) == 0
