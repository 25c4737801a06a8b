"""What a push sends on its fast paths: endpoints that follow an updated cluster, responses of any size on the wire
(one write when the flow-control window holds them, grpclib's own waiting path when it does not), delta streams
that keep no copy of the shared snapshot, over grpclib's in-memory ChannelFor (real HTTP/2 framing)."""

from __future__ import annotations

import pytest

from xds_server.snapshot import CLUSTER, ENDPOINT, Snapshot
from xds_server.testing.fake_client import FakeAdsClient
from xds_server.testing.resources import eds_cluster, load_assignment

pytestmark = pytest.mark.timeout(60)


def mesh(timeout: str, names: tuple[str, ...] = ("a", "b", "c"), *, port: int = 9) -> Snapshot:
    items = [eds_cluster(n, connect_timeout=timeout if n == "b" else "1s") for n in names]
    items += [load_assignment(n, [("127.0.0.1", port)]) for n in names]
    return Snapshot.from_resources(items)


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_an_updated_cluster_is_followed_by_its_endpoints_even_when_they_did_not_change(cache, channel, delta):
    cache.set_snapshot("n1", mesh("1s"))
    async with FakeAdsClient(channel, "n1", delta=delta) as c:
        await c.request(CLUSTER)
        await c.ack(await c.recv())
        await c.request(ENDPOINT, ["a", "b", "c"])
        await c.ack(await c.recv())
        for gen in range(2, 5):  # each push changes cluster "b" only (several rounds: the memoized diff path)
            cache.set_snapshot("n1", mesh(f"{gen}s"))
            cds = await c.recv()
            assert cds.type_url == CLUSTER
            assert (cds.names if delta else sorted(cds.names)) == (["b"] if delta else ["a", "b", "c"])
            await c.ack(cds)
            eds = await c.recv()  # Envoy keeps an updated EDS cluster warming until it gets its endpoints
            assert eds.type_url == ENDPOINT
            assert eds.names == ["b"] if delta else sorted(eds.names) == ["a", "b", "c"]
            await c.ack(eds)
            await c.expect_nothing(0.1)


async def test_a_delta_stream_in_sync_with_the_shared_snapshot_still_diffs_after_an_unsubscribe(cache, channel):
    cache.set_snapshot("n1", mesh("1s"))
    async with FakeAdsClient(channel, "n1", delta=True) as c:
        await c.request(ENDPOINT, ["a", "b", "c"])
        first = await c.recv()
        assert sorted(first.names) == ["a", "b", "c"]
        await c.ack(first)
        await c.send_delta(ENDPOINT, unsubscribe=["a"])
        await c.expect_nothing(0.1)  # nothing changed for what it still wants
        cache.set_snapshot("n1", mesh("1s", port=10))  # every endpoint changes
        r = await c.recv()
        assert sorted(r.names) == ["b", "c"]
        assert r.removed == []
        await c.ack(r)
        await c.send_delta(ENDPOINT, subscribe=["a"])
        back = await c.recv()
        assert back.names == ["a"]


@pytest.mark.parametrize("size", [100_000, 5_000_000], ids=["several-frames", "beyond-the-window"])
async def test_a_response_of_any_size_arrives_whole_and_the_next_one_too(cache, channel, size):
    # 100 KB spans several 16 KB HTTP/2 frames (written at once); 5 MB exceeds the client's 4 MiB flow-control
    # window, so the server must wait for window updates (grpclib's path)
    def big(gen: int) -> Snapshot:
        return Snapshot.from_resources([eds_cluster(f"{gen}-{i}-" + "x" * (size // 4)) for i in range(4)])

    cache.set_snapshot("n1", big(1))
    async with FakeAdsClient(channel, "n1") as c:
        await c.request(CLUSTER)
        for gen in (1, 2, 3):
            r = await c.recv(timeout=30)
            assert sorted(r.names) == sorted(cache.snapshot("n1").of_type(CLUSTER))  # type: ignore[union-attr]
            await c.ack(r)
            if gen < 3:
                cache.set_snapshot("n1", big(gen + 1))


@pytest.mark.parametrize("size", [0, 1, 16_384, 16_385, 100_000])
def test_the_direct_data_frames_are_byte_for_byte_what_h2_itself_would_send(size):
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.settings import SettingCodes

    from xds_server.fastsend import data_frames

    client = H2Connection(H2Configuration(client_side=True))
    client.initiate_connection()
    client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    client.increment_flow_control_window(1 << 20)
    client.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":path", "/x"), (":authority", "a")])
    server = H2Connection(H2Configuration(client_side=False))
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    server.send_headers(1, [(":status", "200")])
    server.data_to_send()
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = server.max_outbound_frame_size
    for i in range(0, max(size, 1), frame):
        server.send_data(1, data[i : i + frame])
    assert data_frames(1, data, frame) == server.data_to_send()
