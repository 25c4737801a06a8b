"""One shard of ``bench/push.py``'s synthetic ADS clients: a child process with its own asyncio loop.

10,000 fake clients in one process starve its loop (decoding 10k responses takes longer than the server's 10 s
keepalive-ping timeout, so the server rightly drops the streams that do not answer): the parent therefore splits the
node ids over several of these processes. Each one connects its clients (its own grpclib channel, i.e. TCP
connection, per client; loopback only), subscribes them to clusters and listeners, ACKs every response, and records
the monotonic time of each CDS ACK (``CLOCK_MONOTONIC`` is one clock for every process of the host, so the parent
compares it with its own reload time).

Protocol over a ``multiprocessing`` pipe (parent -> shard / shard -> parent):

- shard: ``("ready", connect_seconds)`` once every client has its initial CDS and LDS, or ``("error", text)``;
- parent ``("wait", version, timeout)`` -> shard ``("acked", {node: time})`` once every client ACKed that CDS
  version (``("error", text)`` on a failed client or after ``timeout`` seconds);
- parent ``("stop",)``: close every stream and exit.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpclib.client

from xds_server.ads_transport import XdsCodec
from xds_server.snapshot import CLUSTER, LISTENER
from xds_server.testing.fake_client import FakeAdsClient

LOOPBACK = "127.0.0.1"


class Client:
    def __init__(self, port: int, node_id: str, delta: bool) -> None:
        self.node_id = node_id
        self.channel = grpclib.client.Channel(LOOPBACK, port, codec=XdsCodec())
        self.fake = FakeAdsClient(self.channel, node_id, delta=delta, light=True)
        self.acked: dict[str, float] = {}  # cluster version -> monotonic time of the ACK
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        await self.fake.start()
        await self.fake.request(CLUSTER)
        await self.fake.request(LISTENER)
        seen: set[str] = set()
        while True:
            resp = await self.fake.recv(timeout=600)
            await self.fake.ack(resp)
            seen.add(resp.type_url)
            if resp.type_url == CLUSTER:
                self.acked[resp.version] = time.monotonic()
            if len(seen) == 2:
                self.ready.set()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
        try:
            await self.fake.close()
        except Exception:
            pass
        self.channel.close()


def failed(clients: list[Client]) -> str | None:
    for c in clients:
        if c.task is not None and c.task.done():
            return f"client {c.node_id} failed: {c.task.exception()!r}"
    return None


async def _until(clients: list[Client], done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        err = failed(clients)
        if err:
            raise RuntimeError(err)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout:.0f} s")
        await asyncio.sleep(0.01)


async def serve(conn: Connection, port: int, nodes: list[str], delta: bool, batch: int) -> None:
    clients: list[Client] = []
    try:
        t0 = time.monotonic()
        for i in range(0, len(nodes), batch):  # in batches: a burst of SYNs overflows listen queues
            new = [Client(port, n, delta) for n in nodes[i : i + batch]]
            for c in new:
                c.task = asyncio.create_task(c.run())
            clients += new
            await _until(new, lambda new=new: all(c.ready.is_set() for c in new), 300, "no initial config")
        conn.send(("ready", time.monotonic() - t0))
        while True:
            msg = await asyncio.to_thread(conn.recv)
            if msg[0] == "stop":
                return
            _, version, timeout = msg
            await _until(
                clients, lambda v=version: all(v in c.acked for c in clients), timeout, "not every client ACKed"
            )
            conn.send(("acked", {c.node_id: c.acked[version] for c in clients}))
    finally:
        await asyncio.gather(*(c.close() for c in clients))


def main(conn: Connection, port: int, nodes: list[str], delta: bool, batch: int = 50) -> None:
    """Entry point of the shard process (``multiprocessing`` target)."""
    try:
        asyncio.run(serve(conn, port, nodes, delta, batch))
    except BaseException as e:  # reported to the parent, which fails the run
        try:
            conn.send(("error", f"{type(e).__name__}: {e}"))
        except OSError:
            pass
    finally:
        conn.close()
