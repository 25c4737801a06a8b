"""Data-plane benchmark: what the mesh costs an application, measured the way Istio publishes it.

fortio (Istio's own load tool, built from the Go module proxy by ``scripts/bench/build-fortio.sh`` into
``~/.cache/meshwork/fortio``) sends ``--qps`` requests/s (default 1,000) with a 1 KB body (POST, the fortio server
echoes it: 1 KB each way) over ``--connections`` (16) keep-alive connections, for ``--duration`` seconds, in two
set-ups side by side in one run, interleaved round by round (so both see the same machine load):

* **direct**: fortio client -> fortio server;
* **mesh**: fortio client -> client sidecar -> (mTLS, SPIFFE-verified) -> server sidecar -> fortio server, two real
  Envoy sidecars configured by Meshwork's control plane (``meshctl local run`` through the local-mesh harness
  ``mesh_operator.testing.localmesh``; the fortio server is the service's workload, the client sidecar belongs to a
  ``loadgen`` client);
* **bare Envoy** (``--bare``, on by default): the same two hops through two Envoys of the same binary and worker
  count with a minimal static config — plain HTTP, one route, the router filter, no TLS, no stats tags, no access
  log — the floor of two Envoy hops on this machine: what no mesh config can take away. The mesh's added latency
  above it is what Meshwork's config (mTLS, RBAC, the mesh's filters, access log) adds.

Figures: latency percentiles (p50, p90, p99, max) of each set-up, the mesh's added latency (mesh - direct, the
figure Istio publishes: +0.23 ms p90 / +0.30 ms p99 at 1,000 rps, 1 KB, 16 connections, mTLS), the two sidecars'
CPU (user+system time of both Envoy processes over the mesh windows, per 1,000 rps; Istio: 0.20 vCPU per sidecar
per 1,000 rps) and their RSS (Istio: 60 MB per sidecar). Everything runs on 127.0.0.1. A sidecar's CPU includes
its stats flushes and xDS keep-alives, not the control plane's.

    .venv/bin/python bench/dataplane.py                          # 3 rounds x 30 s per set-up
    .venv/bin/python bench/dataplane.py --rounds 1 --duration 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "operator"), str(ROOT / "bench")]

import _results as bench_results  # noqa: E402
import psutil  # noqa: E402

from mesh_operator.testing.localmesh import LocalMeshBuilder, RunningMesh, _wait_port  # noqa: E402
from xds_server.envoy_binary import envoy_path  # noqa: E402
from xds_server.ports import free_port  # noqa: E402

ISTIO = {"added_p90_ms": 0.23, "added_p99_ms": 0.30, "vcpu_per_sidecar_per_1k_rps": 0.20, "rss_mb_per_sidecar": 60}
PERCENTILES = (50, 90, 99, 99.9)


def fortio_binary() -> str:
    """Build or reuse fortio (the script prints its path last)."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "bench" / "build-fortio.sh")], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"building fortio failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def load(fortio: str, url: str, qps: int, connections: int, seconds: float, size: int, work: Path) -> dict[str, Any]:
    """One bounded fortio run; its JSON result, reduced to what the table needs (latencies in ms)."""
    result = work / f"fortio-{time.monotonic_ns()}.json"
    subprocess.run(
        [
            fortio,
            "load",
            "-quiet",
            "-qps",
            str(qps),
            "-c",
            str(connections),
            "-t",
            f"{seconds}s",
            "-payload-size",
            str(size),
            "-p",
            ",".join(str(p) for p in PERCENTILES),
            "-json",
            str(result),
            "-allow-initial-errors",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=seconds + 60,
    )
    doc = json.loads(result.read_text())
    hist = doc["DurationHistogram"]
    pct = {f"p{p['Percentile']:g}": p["Value"] * 1000 for p in hist["Percentiles"]}
    return {
        "requests": hist["Count"],
        "actual_qps": doc["ActualQPS"],
        "ok": doc.get("RetCodes", {}).get("200", 0),
        "min_ms": hist["Min"] * 1000,
        "avg_ms": hist["Avg"] * 1000,
        "max_ms": hist["Max"] * 1000,
        **{k.replace(".", "_"): v for k, v in pct.items()},
    }


def sidecars(running: RunningMesh) -> list[psutil.Process]:
    procs = []
    for pid_file in sorted(running.builder.state_dir.glob("proxies/*/envoy.pid")):
        procs.append(psutil.Process(int(pid_file.read_text().split()[0])))
    return procs


def cpu_seconds(procs: list[psutil.Process]) -> float:
    return sum(p.cpu_times().user + p.cpu_times().system for p in procs)


# Sidecar configurations compared side by side: what Meshwork's generated config and sidecar launch control.
VARIANTS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "default": ({}, []),  # as shipped: access log on (text), Envoy's default worker threads (one per CPU)
    "no-access-log": ({"accessLog": {"enabled": False}}, []),
    "concurrency-1": ({}, ["--envoy-concurrency", "1"]),
    "lean": ({"accessLog": {"enabled": False}}, ["--envoy-concurrency", "1"]),
}
#: The two-hop floor (``--bare``): reported beside the variants, under this name.
BARE = "bare-envoy"


def build_mesh(work: Path, fortio: str, mesh_spec: dict[str, Any]) -> tuple[LocalMeshBuilder, int]:
    builder = LocalMeshBuilder(work)
    if mesh_spec:
        builder.mesh(**mesh_spec)
    builder.service("server", instances=[{"name": "server-1"}])
    app_port = builder.workloads["server-1"].app_port
    assert app_port is not None
    builder.services[0]["instances"][0]["command"] = [
        fortio,
        "server",
        "-http-port",
        f"127.0.0.1:{app_port}",
        "-grpc-port",
        "disabled",
        "-redirect-port",
        "disabled",
        "-quiet",
    ]
    builder.client("loadgen", upstreams=["server"])
    return builder, app_port


def _bare_bootstrap(listen: int, upstream: int, admin: int) -> dict[str, Any]:
    """One hop of the bare set-up: HTTP on 127.0.0.1:``listen`` -> 127.0.0.1:``upstream``, router only."""
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
        "HttpConnectionManager",
        "stat_prefix": "bare",
        "route_config": {
            "virtual_hosts": [
                {"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "up"}}]}
            ]
        },
        "http_filters": [
            {
                "name": "router",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
            }
        ],
    }
    endpoint = {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream}}}}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "in",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                    "filter_chains": [{"filters": [{"name": "hcm", "typed_config": hcm}]}],
                }
            ],
            "clusters": [
                {
                    "name": "up",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {"cluster_name": "up", "endpoints": [{"lb_endpoints": [endpoint]}]},
                }
            ],
        },
    }


@contextlib.contextmanager
def bare_envoys(work: Path, app_port: int, concurrency: int | None) -> Any:
    """Two bare Envoys in a chain in front of the fortio server; yields (url, processes)."""
    work.mkdir(parents=True, exist_ok=True)
    server_side, client_side = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, listen, upstream in (("server", server_side, app_port), ("client", client_side, server_side)):
            config = work / f"bare-{name}.json"
            config.write_text(json.dumps(_bare_bootstrap(listen, upstream, free_port())))
            args = [str(envoy_path()), "-c", str(config), "--base-id", str(free_port()), "-l", "warning"]
            args += ["--concurrency", str(concurrency)] if concurrency else []
            log = (work / f"bare-{name}.log").open("wb")
            procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
            _wait_port(listen, 30)
        yield f"http://127.0.0.1:{client_side}/echo", [psutil.Process(p.pid) for p in procs]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.fmean(r[key] for r in rows)


def _summary(direct: list[dict[str, Any]], mesh: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("p50", "p90", "p99", "p99_9", "max_ms", "actual_qps")
    d = {k: _mean(direct, k) for k in keys}
    m = {k: _mean(mesh, k) for k in keys}
    return {"direct": d, "mesh": m, "added_ms": {k: m[k] - d[k] for k in keys if k != "actual_qps"}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qps", type=int, default=1000)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--size", type=int, default=1024, help="request body bytes (echoed back)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds per set-up per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--variants", default="default,lean", help=f"sidecar configurations, comma-separated: {', '.join(VARIANTS)}"
    )
    p.add_argument("--result", default="dataplane", help="result file name under bench/results/")
    p.add_argument(
        "--bare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also the two-hop floor: two Envoys with a minimal plain-HTTP config (default: on)",
    )
    args = p.parse_args()
    names = args.variants.split(",")
    for n in names:
        if n not in VARIANTS:
            p.error(f"unknown variant {n!r}; known: {', '.join(VARIANTS)}")
    load_at_start = bench_results.load()
    fortio = fortio_binary()
    with tempfile.TemporaryDirectory(prefix="meshwork-dataplane-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        meshes: dict[str, tuple[RunningMesh | None, str, list[psutil.Process]]] = {}
        direct_url, first_app_port = "", 0
        for name in names:
            spec, extra = VARIANTS[name]
            builder, app_port = build_mesh(work / name, fortio, spec)
            running = stack.enter_context(builder.run(timeout=120, extra_args=extra))
            _wait_port(app_port, 30)
            procs = sidecars(running)
            assert len(procs) == 2, f"expected two sidecars, found {len(procs)}"
            meshes[name] = (running, running.url("loadgen", "server", "/echo"), procs)
            direct_url = direct_url or f"http://127.0.0.1:{app_port}/echo"  # the first variant's server, direct
            first_app_port = first_app_port or app_port
        if args.bare:  # (same worker count as the shipped sidecars: Envoy's default, one per CPU)
            url, procs = stack.enter_context(bare_envoys(work / "bare", first_app_port, None))
            meshes[BARE] = (None, url, procs)
        # Warm-up (connections, TLS sessions, Envoy's first-request paths): not counted.
        load(fortio, direct_url, args.qps, args.connections, 3, args.size, work)
        for _, url, _ in meshes.values():
            load(fortio, url, args.qps, args.connections, 3, args.size, work)
        direct: list[dict[str, Any]] = []
        rows: dict[str, list[dict[str, Any]]] = {n: [] for n in meshes}
        cpu = dict.fromkeys(meshes, 0.0)
        secs = dict.fromkeys(meshes, 0.0)
        reqs = dict.fromkeys(meshes, 0)
        for r in range(args.rounds):
            direct.append(load(fortio, direct_url, args.qps, args.connections, args.duration, args.size, work))
            line = f"round {r + 1}: direct p90 {direct[-1]['p90']:.2f} p99 {direct[-1]['p99']:.2f} ms"
            for name, (_, url, procs) in meshes.items():
                c0, t0 = cpu_seconds(procs), time.monotonic()
                row = load(fortio, url, args.qps, args.connections, args.duration, args.size, work)
                cpu[name] += cpu_seconds(procs) - c0
                secs[name] += time.monotonic() - t0
                reqs[name] += row["requests"]
                rows[name].append(row)
                line += f" | {name} p90 {row['p90']:.2f} p99 {row['p99']:.2f} ms ({row['ok']}/{row['requests']} 200s)"
            print(line, flush=True)
        variants: dict[str, Any] = {}
        for name, (_, _, procs) in meshes.items():
            rps = reqs[name] / secs[name]
            vcpu = cpu[name] / secs[name] / len(procs)
            variants[name] = {
                "mesh_spec": VARIANTS[name][0] if name != BARE else None,
                "local_run_args": VARIANTS[name][1] if name != BARE else [],
                **_summary(direct, rows[name]),
                "mesh_rounds": rows[name],
                "non_200": sum(x["requests"] - x["ok"] for x in rows[name]),
                "mesh_rps": rps,
                "sidecar_vcpu_at_rate": vcpu,
                "sidecar_vcpu_per_1k_rps": vcpu / rps * 1000,
                "sidecar_rss_mb": [pr.memory_info().rss / 2**20 for pr in procs],
            }
    figures: dict[str, Any] = {
        "qps": args.qps,
        "connections": args.connections,
        "payload_bytes": args.size,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "direct_rounds": direct,
        "variants": variants,
        "istio": ISTIO,
    }
    bare = variants.get(BARE)
    for name, v in variants.items():
        if bare is not None and name != BARE:  # what the mesh config adds above the two-hop floor
            v["added_over_bare_ms"] = {k: v["mesh"][k] - bare["mesh"][k] for k in v["added_ms"]}
        add = v["added_ms"]
        print(
            f"{name}: added by two Envoys (mean of {args.rounds} rounds): p50 +{add['p50']:.2f} ms, p90 "
            f"+{add['p90']:.2f} ms (Istio +0.23), p99 +{add['p99']:.2f} ms (Istio +0.30), max +{add['max_ms']:.1f} ms;"
            f" sidecar CPU {v['sidecar_vcpu_per_1k_rps']:.2f} vCPU per 1,000 rps each (Istio 0.20); RSS "
            f"{', '.join(f'{x:.0f}' for x in v['sidecar_rss_mb'])} MB (Istio 60)",
            flush=True,
        )
    bench_results.write(
        args.result,
        figures,
        load_at_start,
        notes="latencies: mean over rounds of each round's fortio percentile; direct and every variant interleaved",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
