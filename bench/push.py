"""Push benchmark: N synthetic ADS clients on one xDS server; change the snapshot; time until every client ACKs.

The server runs as a separate process (``python -m xds_server.testing.server``) so its RSS is its own; the clients
are light fake ADS clients (hand-encoded requests, envelope-only decoding) in this process, each on its own grpclib
channel, i.e. its own TCP connection over loopback. Every client subscribes to clusters (wildcard) and listeners.

The update changes one cluster out of ``--clusters`` (the common incremental case): SotW resends the whole type,
delta only the changed resource. Latency is measured from the server's reload signal to each client's ACK (client
side: includes the server re-reading its snapshot file) and by the server's own convergence histogram (from the
moment the snapshot is set in the cache to the ACK).

    .venv/bin/python bench/push.py                 # 100 and 1000 clients, SotW and delta
    .venv/bin/python bench/push.py --clients 100 --modes delta
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpclib.client
import psutil

from xds_server.ads import XdsCodec
from xds_server.snapshot import CLUSTER, LISTENER, Snapshot
from xds_server.testing.fake_client import FakeAdsClient
from xds_server.testing.resources import eds_cluster, http_listener, route_config
from xds_server.testing.server import XdsServerProcess, write_snapshots


def make_snapshot(clusters: int, generation: int) -> Snapshot:
    items = [eds_cluster(f"svc-{i}") for i in range(clusters)]
    # one cluster changes per generation
    items[0] = eds_cluster("svc-0", connect_timeout=f"{generation + 1}s")
    items += [http_listener("ingress", 15001, "routes"), route_config("routes", "svc-0")]
    return Snapshot.from_resources(items)


class Client:
    def __init__(self, host: str, port: int, node_id: str, delta: bool) -> None:
        self.channel = grpclib.client.Channel(host, port, codec=XdsCodec())
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


async def wait_ready(clients: list[Client], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not all(c.ready.is_set() for c in clients):
        for c in clients:
            if c.task is not None and c.task.done():
                raise RuntimeError(f"client failed: {c.task.exception()!r}")
        if time.monotonic() > deadline:
            raise TimeoutError("clients did not get their initial config")
        await asyncio.sleep(0.01)


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def server_convergence(admin_port: int) -> tuple[float, int]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10).read().decode()
    vals = {}
    for line in text.splitlines():
        if line.startswith("meshwork_xds_convergence_seconds_sum") or line.startswith(
            "meshwork_xds_convergence_seconds_count"
        ):
            k, v = line.split()
            vals[k] = float(v)
    return vals.get("meshwork_xds_convergence_seconds_sum", 0.0), int(
        vals.get("meshwork_xds_convergence_seconds_count", 0)
    )


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def run_one(n: int, delta: bool, clusters: int, workdir: Path) -> dict[str, float | int | str]:
    nodes = [f"bench-{i}" for i in range(n)]
    snap_file = workdir / f"snap-{n}-{delta}.json"
    write_snapshots(snap_file, [(nodes, make_snapshot(clusters, 0))])
    server = await asyncio.to_thread(XdsServerProcess(snap_file, admin=True).start)
    assert server.proc is not None
    assert server.admin_port is not None
    pid = server.proc.pid
    clients: list[Client] = []
    try:
        await asyncio.sleep(0.3)
        rss0 = rss(pid)
        t_connect = time.monotonic()
        for i in range(0, n, 100):  # connect in batches: a burst of 1,000 SYNs overflows listen queues
            batch = [Client("127.0.0.1", server.port, node, delta) for node in nodes[i : i + 100]]
            for c in batch:
                c.task = asyncio.create_task(c.run())
            clients += batch
            await wait_ready(batch)
        connect_s = time.monotonic() - t_connect
        await asyncio.sleep(0.5)
        rss1 = rss(pid)
        sum0, count0 = await asyncio.to_thread(server_convergence, server.admin_port)

        new = make_snapshot(clusters, 1)
        want = new.type_version(CLUSTER)
        write_snapshots(snap_file, [(nodes, new)])
        t0 = time.monotonic()
        server.reload()
        deadline = t0 + 600
        while not all(want in c.acked for c in clients):
            if time.monotonic() > deadline:
                raise TimeoutError("not every client ACKed")
            for c in clients:
                if c.task is not None and c.task.done():
                    raise RuntimeError(f"client failed: {c.task.exception()!r}")
            await asyncio.sleep(0.005)
        lat = [c.acked[want] - t0 for c in clients]
        await asyncio.sleep(0.2)
        sum1, count1 = await asyncio.to_thread(server_convergence, server.admin_port)
        srv_mean = (sum1 - sum0) / max(1, count1 - count0)
        return {
            "mode": "delta" if delta else "sotw",
            "clients": n,
            "connect_s": connect_s,
            "p50_ms": pct(lat, 50) * 1000,
            "p99_ms": pct(lat, 99) * 1000,
            "max_ms": max(lat) * 1000,
            "mean_ms": statistics.fmean(lat) * 1000,
            "srv_mean_ms": srv_mean * 1000,
            "rss_base_mb": rss0 / 2**20,
            "rss_per_stream_kb": (rss1 - rss0) / n / 1024,
        }
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        await asyncio.to_thread(server.stop)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--modes", nargs="+", choices=["sotw", "delta"], default=["sotw", "delta"])
    p.add_argument("--clusters", type=int, default=100)
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for n in a.clients:
            for mode in a.modes:
                rows.append(asyncio.run(run_one(n, mode == "delta", a.clusters, Path(d))))
                print(rows[-1], file=sys.stderr, flush=True)
    cols = ["mode", "clients", "connect_s", "p50_ms", "p99_ms", "max_ms", "mean_ms", "srv_mean_ms", "rss_base_mb"]
    cols.append("rss_per_stream_kb")
    print(f"# {a.clusters} clusters + 1 listener per snapshot; update changes 1 cluster; clients over TCP loopback")
    print(" | ".join(f"{c:>17}" for c in cols))
    for r in rows:
        print(" | ".join(f"{r[c]:>17.1f}" if isinstance(r[c], float) else f"{r[c]:>17}" for c in cols))


if __name__ == "__main__":
    main()
