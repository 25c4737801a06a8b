"""State-of-the-world ADS against the fake client over grpclib's in-memory ChannelFor."""

from __future__ import annotations

import contextlib

import pytest
from grpclib.testing import ChannelFor

from xds_server.ads import AdsServer
from xds_server.ads_transport import XdsCodec
from xds_server.cache import SnapshotCache
from xds_server.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot
from xds_server.testing.fake_client import FakeAdsClient
from xds_server.testing.resources import eds_cluster, http_listener, load_assignment, route_config, simple_snapshot

pytestmark = pytest.mark.timeout(30)


async def test_a_node_without_a_snapshot_gets_no_response_until_one_is_set(cache, channel):
    async with FakeAdsClient(channel, "n1") as c:
        await c.request(CLUSTER)
        await c.expect_nothing(0.2)
        cache.set_snapshot("n1", simple_snapshot(1, 2))
        resp = await c.recv()
        assert resp.type_url == CLUSTER
        assert resp.names == ["backend"]


async def test_nothing_is_sent_before_the_ready_gate_opens(channel, sync):
    cache = SnapshotCache()
    async with ChannelFor([AdsServer(cache, sync)], codec=XdsCodec()) as ch, FakeAdsClient(ch, "n1") as c:
        cache.set_snapshot("n1", simple_snapshot(1, 2))
        await c.request(CLUSTER)
        await c.expect_nothing(0.2)
        cache.mark_ready()
        assert (await c.recv()).names == ["backend"]


async def test_ack_and_nack_are_tracked_and_a_nack_keeps_the_acked_version(cache, channel, sync):
    cache.set_snapshot("n1", simple_snapshot(1, 2))
    async with FakeAdsClient(channel, "n1") as c:
        await c.request(CLUSTER)
        r1 = await c.recv()
        await c.ack(r1)
        await c.expect_nothing(0.1)
        t = sync.proxies()["n1"].types[CLUSTER]
        assert t.acked_version == r1.version == t.sent_version
        cache.set_snapshot("n1", simple_snapshot(1, 2, cluster="other"))
        r2 = await c.recv()
        assert r2.names == ["other"]
        await c.nack(r2, "bad cluster: nope", previous_version=r1.version)
        await c.expect_nothing(0.1)
        t = sync.proxies()["n1"].types[CLUSTER]
        assert t.acked_version == r1.version
        assert t.last_nack is not None
        assert t.last_nack.version == r2.version
        assert "nope" in t.last_nack.error
        assert sync.nacks[CLUSTER] == 1
        assert "meshwork_xds_nacks_total" in sync.render_prometheus()


async def test_a_stale_nonce_is_ignored(cache, channel, sync):
    cache.set_snapshot("n1", Snapshot.from_resources([eds_cluster("a")]))
    async with FakeAdsClient(channel, "n1") as c:
        await c.request(CLUSTER)
        r1 = await c.recv()
        cache.set_snapshot("n1", Snapshot.from_resources([eds_cluster("b")]))
        r2 = await c.recv()
        # An ACK for the superseded response: ignored, not counted, and no new response.
        await c.ack(r1)
        await c.expect_nothing(0.1)
        assert sync.proxies()["n1"].types[CLUSTER].acked_version == ""
        await c.ack(r2)
        await c.expect_nothing(0.1)
        assert sync.proxies()["n1"].types[CLUSTER].acked_version == r2.version


async def test_a_reconnect_with_a_version_and_no_nonce_gets_the_current_state(cache, channel, sync):
    cache.set_snapshot("n1", simple_snapshot(1, 2))
    async with FakeAdsClient(channel, "n1") as c:
        await c.request(CLUSTER)
        r1 = await c.recv()
        await c.ack(r1)
    async with FakeAdsClient(channel, "n1") as c:
        await c.request(CLUSTER, version=r1.version)
        r = await c.recv()
        assert r.version == r1.version
        assert r.nonce != r1.nonce
        assert sync.proxies()["n1"].types[CLUSTER].acked_version == r1.version


async def test_the_node_is_only_read_from_the_first_message(cache, channel, sync):
    cache.set_snapshot("n1", simple_snapshot(1, 2))
    cache.set_snapshot("n2", Snapshot.from_resources([eds_cluster("n2-only")]))
    async with FakeAdsClient(channel, "n1") as c:
        await c.request(CLUSTER)
        await c.ack(await c.recv())
        c.node_id = "n2"
        c.send_node_every_time = True
        await c.request(LISTENER)
        assert (await c.recv()).names == ["ingress"]
    assert "n2" not in sync.proxies()


async def test_named_types_send_only_the_requested_resources(cache, channel):
    snap = Snapshot.from_resources([load_assignment("a", [("127.0.0.1", 1)]), load_assignment("b", [])])
    cache.set_snapshot("n1", snap)
    async with FakeAdsClient(channel, "n1") as c:
        await c.request(ENDPOINT, ["b", "missing"])
        r = await c.recv()
        assert r.names == ["b"]
        await c.ack(r, names=["a", "b"])  # subscription grows in the ACK
        r2 = await c.recv()
        assert sorted(r2.names) == ["a", "b"]


async def test_a_snapshot_change_is_pushed_in_make_before_break_order(cache, channel):
    cache.set_snapshot("n1", simple_snapshot(1, 2))
    async with FakeAdsClient(channel, "n1") as c:
        for t, names in ((CLUSTER, []), (ENDPOINT, ["backend"]), (LISTENER, []), (ROUTE, ["routes"])):
            await c.request(t, names)
            await c.ack(await c.recv())
        # A new cluster, its endpoints, and the route switched to it; the old cluster goes away.
        new = Snapshot.from_resources(
            [
                eds_cluster("next"),
                load_assignment("next", [("127.0.0.1", 9)]),
                http_listener("ingress", 2, "routes"),
                route_config("routes", "next"),
            ]
        )
        cache.set_snapshot("n1", new)
        cds = await c.recv()
        assert cds.type_url == CLUSTER
        assert sorted(cds.names) == ["backend", "next"]  # the removed cluster is kept for now
        await c.ack(cds)
        # The fake proxy now subscribes to the new cluster's endpoints, as Envoy would.
        await c.send_sotw(ENDPOINT, ["backend", "next"], version="x", nonce="")
        c.names[ENDPOINT] = ["backend", "next"]
        eds = await c.recv()
        assert eds.type_url == ENDPOINT
        assert sorted(eds.names) == ["backend", "next"]  # removed endpoints are kept for now too
        await c.expect_nothing(0.1)  # the route waits until the new endpoints are ACKed
        await c.ack(eds)
        rds = await c.recv()
        assert rds.type_url == ROUTE
        await c.expect_nothing(0.1)  # the removal waits for the route update to be ACKed
        await c.ack(rds)
        cds2 = await c.recv()
        assert (cds2.type_url, cds2.names) == (CLUSTER, ["next"])
        eds2 = await c.recv()
        assert (eds2.type_url, eds2.names) == (ENDPOINT, ["next"])


async def test_cached_bytes_decode_back_to_the_same_messages(cache, channel):
    snap = simple_snapshot(1, 2)
    cache.set_snapshot("n1", snap)
    async with FakeAdsClient(channel, "n1") as c:
        for t, names in ((CLUSTER, []), (ENDPOINT, ["backend"]), (LISTENER, []), (ROUTE, ["routes"])):
            await c.request(t, names)
            r = await c.recv()
            for name, msg in r.resources.items():
                assert bytes(msg) == snap.of_type(t)[name].body
            assert r.version == snap.type_version(t) or t in (ENDPOINT, ROUTE)


async def test_convergence_is_recorded_when_every_type_is_acked(cache, channel, sync):
    cache.set_snapshot("n1", simple_snapshot(1, 2))
    async with FakeAdsClient(channel, "n1") as c:
        for t, names in ((CLUSTER, []), (LISTENER, [])):
            await c.request(t, names)
            await c.ack(await c.recv())
        await c.expect_nothing(0.05)
        p = sync.proxies()["n1"]
        assert p.in_sync
        assert sync.convergence.count == 0  # set before the stream connected: not a convergence sample
        cache.set_snapshot("n1", simple_snapshot(1, 2, cluster="c2"))
        await c.ack(await c.recv())
        await c.expect_nothing(0.05)
        assert p.acked_version == cache.get("n1").version  # type: ignore[union-attr]
        assert sync.convergence.count == 1
    assert "n1" not in sync.proxies()


async def _expect_refusal(c: FakeAdsClient, status: object) -> None:
    # grpclib's server sends the trailers and then resets the half-open stream; its client may see either first.
    from grpclib.exceptions import GRPCError, StreamTerminatedError

    with pytest.raises((GRPCError, StreamTerminatedError)) as err:
        await c.recv()
    if isinstance(err.value, GRPCError):
        assert err.value.status == status
    with contextlib.suppress(GRPCError, StreamTerminatedError):
        await c._stream.__aexit__(None, None, None)


async def test_a_stream_whose_first_message_has_no_node_is_refused(channel, sync):
    from grpclib.const import Status

    c = FakeAdsClient(channel, "n1")
    c._node_sent = True  # pretend the node went out already
    await c.start()
    await c.request(CLUSTER)
    await _expect_refusal(c, Status.INVALID_ARGUMENT)
    assert not sync.proxies()


async def test_a_request_above_the_size_limit_is_refused(cache, sync):
    from grpclib.const import Status

    async with ChannelFor([AdsServer(cache, sync, max_request_bytes=1000)], codec=XdsCodec()) as ch:
        c = FakeAdsClient(ch, "n1")
        await c.start()
        await c.request(ENDPOINT, [f"cluster-{i}" for i in range(200)])
        await _expect_refusal(c, Status.RESOURCE_EXHAUSTED)


async def test_a_nonce_this_stream_never_issued_counts_as_a_new_subscription(cache, channel):
    cache.set_snapshot("n1", simple_snapshot(1, 2))
    async with FakeAdsClient(channel, "n1") as c:
        await c.send_sotw(CLUSTER, version="old", nonce="from-a-previous-server")
        assert (await c.recv()).names == ["backend"]
