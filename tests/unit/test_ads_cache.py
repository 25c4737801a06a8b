"""The snapshot cache: per-node entries, the ready gate, change notification; server plumbing helpers."""

from __future__ import annotations

import asyncio

import pytest

from xds_server.ads_transport import peer_identity, server_config
from xds_server.cache import SnapshotCache
from xds_server.snapshot import Snapshot
from xds_server.testing.resources import eds_cluster

pytestmark = pytest.mark.timeout(10)


def snap(*names: str) -> Snapshot:
    return Snapshot.from_resources([eds_cluster(n) for n in names])


async def test_the_ready_gate_hides_every_snapshot_until_opened():
    cache = SnapshotCache()
    cache.set_snapshot("n", snap("a"))
    assert cache.get("n") is None
    waiter = asyncio.create_task(cache.wait_for_change("n", None))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    cache.mark_ready()
    entry = await asyncio.wait_for(waiter, 1)
    assert entry.version == snap("a").version


async def test_setting_the_same_content_again_is_not_a_change():
    cache = SnapshotCache(ready=True)
    assert cache.set_snapshot("n", snap("a"))
    first = cache.get("n")
    assert not cache.set_snapshot("n", snap("a"))
    assert cache.get("n") is first
    waiter = asyncio.create_task(cache.wait_for_change("n", first))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    cache.set_snapshot("n", snap("b"))
    assert (await asyncio.wait_for(waiter, 1)).version == snap("b").version


def test_nodes_with_the_same_content_share_one_prepared_snapshot():
    cache = SnapshotCache(ready=True)
    s = snap("a", "b")
    cache.set_snapshot("n1", s)
    cache.set_snapshot("n2", snap("a", "b"))
    e1, e2 = cache.get("n1"), cache.get("n2")
    assert e1 is not None
    assert e2 is not None
    assert e1.prepared is e2.prepared
    cache.clear_snapshot("n1")
    cache.clear_snapshot("n2")
    assert cache.get("n1") is None
    assert list(cache.nodes()) == []
    assert not cache._prepared


def test_peer_identity_is_the_first_uri_san_of_the_client_certificate():
    class Peer:
        def __init__(self, cert: dict | None) -> None:
            self._cert = cert

        def cert(self) -> dict | None:
            return self._cert

    class Stream:
        def __init__(self, cert: dict | None) -> None:
            self.peer = Peer(cert)

    san = {"subjectAltName": (("DNS", "x"), ("URI", "spiffe://mesh/ns/a/sa/b"))}
    assert peer_identity(Stream(san)) == "spiffe://mesh/ns/a/sa/b"  # type: ignore[arg-type]
    assert peer_identity(Stream(None)) is None  # type: ignore[arg-type]
    assert peer_identity(Stream({})) is None  # type: ignore[arg-type]


def test_the_server_config_sends_keepalive_pings():
    cfg = server_config(keepalive_time=15).__for_server__()
    assert cfg._keepalive_time == 15
    assert cfg._keepalive_permit_without_calls
