"""Delta ADS against the fake client over grpclib's in-memory ChannelFor."""

from __future__ import annotations

import pytest
from grpclib.testing import ChannelFor

from xds_server.ads import AdsServer
from xds_server.ads_transport import XdsCodec
from xds_server.snapshot import CLUSTER, ENDPOINT, SECRET, Snapshot
from xds_server.testing.fake_client import FakeAdsClient
from xds_server.testing.resources import eds_cluster, generic_secret, load_assignment

pytestmark = pytest.mark.timeout(30)


def clusters(*names: str) -> Snapshot:
    return Snapshot.from_resources([eds_cluster(n) for n in names])


async def test_wildcard_clusters_are_sent_then_only_changes_and_removals(cache, channel, sync):
    cache.set_snapshot("n1", clusters("a", "b"))
    async with FakeAdsClient(channel, "n1", delta=True) as c:
        await c.request(CLUSTER)
        r1 = await c.recv()
        assert sorted(r1.names) == ["a", "b"]
        assert r1.removed == []
        await c.ack(r1)
        cache.set_snapshot("n1", Snapshot.from_resources([eds_cluster("a"), eds_cluster("c", connect_timeout="2s")]))
        r2 = await c.recv()
        assert r2.names == ["c"]  # "a" unchanged: not resent
        assert r2.removed == ["b"]
        assert r2.versions["c"] == cache.snapshot("n1").of_type(CLUSTER)["c"].version  # type: ignore[union-attr]
        await c.ack(r2)
        await c.expect_nothing(0.1)
        assert sync.proxies()["n1"].types[CLUSTER].acked_version == r2.version


async def test_named_subscribe_and_unsubscribe(cache, channel):
    cache.set_snapshot("n1", Snapshot.from_resources([load_assignment(n, []) for n in ("a", "b", "c")]))
    async with FakeAdsClient(channel, "n1", delta=True) as c:
        await c.send_delta(ENDPOINT, ["a"])
        r = await c.recv()
        assert r.names == ["a"]
        await c.ack(r)
        await c.send_delta(ENDPOINT, ["b"], ["a"])
        r = await c.recv()
        assert r.names == ["b"]
        assert r.removed == []  # an unsubscribed resource is simply forgotten
        await c.ack(r)
        cache.set_snapshot("n1", Snapshot.from_resources([load_assignment("a", [("127.0.0.1", 1)])]))
        r = await c.recv()
        assert r.names == []
        assert r.removed == ["b"]


async def test_initial_resource_versions_avoid_resending_what_the_proxy_has(cache, channel):
    snap = clusters("a", "b")
    cache.set_snapshot("n1", snap)
    have = {"a": snap.of_type(CLUSTER)["a"].version, "gone": "old"}
    async with FakeAdsClient(channel, "n1", delta=True) as c:
        await c.send_delta(CLUSTER, initial=have)
        r = await c.recv()
        assert r.names == ["b"]
        assert r.removed == ["gone"]


async def test_a_delta_nack_is_recorded_and_a_stale_nonce_is_ignored(cache, channel, sync):
    cache.set_snapshot("n1", clusters("a"))
    async with FakeAdsClient(channel, "n1", delta=True) as c:
        await c.request(CLUSTER)
        r1 = await c.recv()
        cache.set_snapshot("n1", clusters("a", "b"))
        r2 = await c.recv()
        await c.ack(r1)  # stale
        await c.expect_nothing(0.1)
        t = sync.proxies()["n1"].types[CLUSTER]
        assert t.acked_version == ""
        await c.nack(r2, "cluster b: invalid")
        await c.expect_nothing(0.1)
        assert t.last_nack is not None
        assert "invalid" in t.last_nack.error
        assert t.last_nack.version == r2.version


async def test_an_empty_first_response_lets_a_wildcard_proxy_finish_initializing(cache, channel):
    cache.set_snapshot("n1", Snapshot.from_resources([generic_secret("s", "x")]))
    async with FakeAdsClient(channel, "n1", delta=True) as c:
        await c.request(CLUSTER)
        r = await c.recv()
        assert (r.type_url, r.names) == (CLUSTER, [])
        await c.send_delta(SECRET, ["s"])
        r = await c.recv()
        assert r.names == ["s"]


async def test_authorize_hides_resources_from_a_node(cache, sync):
    def authorize(node_id: str, peer: str | None, type_url: str, name: str) -> bool:
        return not (type_url == SECRET and not name.startswith(node_id))

    cache.set_snapshot("n1", Snapshot.from_resources([generic_secret("n1-key", "x"), generic_secret("n2-key", "y")]))
    async with ChannelFor([AdsServer(cache, sync, authorize=authorize)], codec=XdsCodec()) as ch:
        async with FakeAdsClient(ch, "n1", delta=True) as c:
            await c.send_delta(SECRET, ["n1-key", "n2-key"])
            r = await c.recv()
            assert r.names == ["n1-key"]
        async with FakeAdsClient(ch, "n1") as c:
            await c.request(SECRET, ["n1-key", "n2-key"])
            r = await c.recv()
            assert r.names == ["n1-key"]
