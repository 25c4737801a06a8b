"""Sidecar scoping benchmark: the memory of ONE real Envoy sidecar in a 1k-service mesh, full vs scoped.

A synthetic transparent-mode mesh of ``--services`` (default 1,000) HTTP Services in ``--namespaces`` (20)
namespaces, each Service with two instances and a TrafficPolicy (a request timeout and a header rule: two routes).
One transparent sidecar (``ns-00/probe-1``, service account ``probe``) is translated by the real pipeline
(``translate_mesh`` -> ``render.bootstrap``) in four set-ups, side by side in one run:

* **full**: no egress declaration, no AccessPolicy — the sidecar gets every Service (what it got before scoping);
* **declared**: the Mesh's ``sidecarEgress`` lists the sidecar's own namespace (``ns-00/*``) and ``--declared``
  (10) Services elsewhere;
* **narrow**: the declaration lists ``--narrow`` (10) Services by name, half in its namespace, half elsewhere
  (a workload that calls a handful of Services, as most do);
* **access**: no declaration, but every Service outside ``ns-00`` has an AccessPolicy allowing only callers of its
  own namespace (AccessPolicy-derived scoping alone);
* and, as the floor, the same Envoy with no listener and no cluster (only its admin): what no scoping can remove
  (the binary's pages, the allocator, the admin and the stats of the server itself).

Each set-up's config is loaded by a real Envoy (a static bootstrap: the same listeners, clusters and routes the xDS
server would send, endpoints inline; ``--concurrency 1``) and its RSS is read once Envoy is ready and has idled
``--settle`` seconds; set-ups are interleaved over ``--rounds`` rounds (median reported). Also reported: the
clusters and listeners Envoy holds (from its admin ``/stats``), the serialized xDS bytes of the sidecar's snapshot
and the bootstrap size; RSS is reported whole, as its anonymous (private) part — the file-backed rest is the Envoy
binary's pages, shared page cache among the sidecars of a node — and above the floor. No traffic is sent: endpoint
and ClusterIP addresses are 127.x (never dialed), the listeners Envoy binds and its admin are on 127.0.0.1 free
ports.

    .venv/bin/python bench/scope.py                        # 1,000 services, 3 rounds
    .venv/bin/python bench/scope.py --services 200 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "operator"), str(ROOT / "bench")]

import _results as bench_results  # noqa: E402
import psutil  # noqa: E402

from mesh_operator.loader import load_text  # noqa: E402
from mesh_operator.render import bootstrap  # noqa: E402
from mesh_operator.translate import translate_mesh  # noqa: E402
from xds_server.envoy_binary import envoy_path  # noqa: E402
from xds_server.ports import free_port  # noqa: E402
from xds_server.translate import snapshot_of_proxy  # noqa: E402

PROBE = "ns-00/probe-1"
SETUPS = ("full", "declared", "narrow", "access")


def _ip(block: int, i: int) -> str:
    return f"127.{block}.{i // 250}.{i % 250 + 1}"


def mesh_yaml(services: int, namespaces: int, setup: str, declared: int, narrow: int = 10) -> str:
    """The synthetic mesh of one set-up, as the YAML a user would write."""
    docs: list[dict[str, Any]] = []
    spec: dict[str, Any] = {"accessLog": {"enabled": False}}
    names = [(f"ns-{i % namespaces:02d}", f"svc-{i:04d}") for i in range(services)]
    if setup == "declared":
        others = [f"{ns}/{n}" for ns, n in names if ns != "ns-00"][:declared]
        spec["sidecarEgress"] = [{"namespace": "ns-00", "serviceAccount": "probe", "services": ["ns-00/*", *others]}]
    elif setup == "narrow":
        own = [f"{ns}/{n}" for ns, n in names if ns == "ns-00"][: narrow // 2]
        others = [f"{ns}/{n}" for ns, n in names if ns != "ns-00"][: narrow - len(own)]
        spec["sidecarEgress"] = [{"namespace": "ns-00", "serviceAccount": "probe", "services": [*own, *others]}]
    docs.append({"apiVersion": "meshwork.io/v1alpha1", "kind": "Mesh", "metadata": {"name": "default"}, "spec": spec})
    inventory = []
    for i, (ns, name) in enumerate(names):
        inventory.append(
            {
                "name": name,
                "namespace": ns,
                "clusterIP": _ip(1, i),
                "ports": [{"port": 80}],
                "instances": [
                    {
                        "name": f"{name}-{k}",
                        "address": _ip(2 + k, i),
                        "port": 8080,
                        "serviceAccount": name,
                        "sidecar": {"mode": "Transparent"},
                    }
                    for k in range(2)
                ],
            }
        )
    clients = [{"name": "probe-1", "namespace": "ns-00", "serviceAccount": "probe", "sidecar": {"mode": "Transparent"}}]
    docs.append(
        {
            "apiVersion": "meshwork.io/v1alpha1",
            "kind": "Inventory",
            "metadata": {"name": "mesh"},
            "spec": {"services": inventory, "clients": clients},
        }
    )
    for ns, name in names:
        docs.append(
            {
                "apiVersion": "meshwork.io/v1alpha1",
                "kind": "TrafficPolicy",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "targetRef": {"name": name},
                    "timeouts": {"request": "5s"},
                    "rules": [
                        {
                            "name": "api",
                            "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                            "requestHeaders": {"set": [{"name": "x-svc", "value": name}]},
                        },
                        {"name": "default"},
                    ],
                },
            }
        )
        if setup == "access" and ns != "ns-00":
            docs.append(
                {
                    "apiVersion": "meshwork.io/v1alpha1",
                    "kind": "AccessPolicy",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"targetRef": {"name": name}, "rules": [{"action": "Allow", "from": [{"namespace": ns}]}]},
                }
            )
    import yaml

    return yaml.safe_dump_all(docs, sort_keys=False)


def prepare(services: int, namespaces: int, setup: str, declared: int, narrow: int, work: Path) -> dict[str, Any]:
    loaded = load_text(mesh_yaml(services, namespaces, setup, declared, narrow), f"{setup}.yaml")
    if loaded.errors:
        raise SystemExit(f"{setup}: the synthetic mesh is invalid: {loaded.problems[:3]}")
    state = loaded.state()
    cfg = translate_mesh(state, only={PROBE}).proxies[PROBE]
    snap = snapshot_of_proxy(cfg)
    xds_bytes = sum(len(r.body) for by in snap.resources.values() for r in by.values())
    boot = bootstrap(state, PROBE)
    for lis in boot["static_resources"]["listeners"]:
        if lis.get("bind_to_port", True):  # the capture and inbound listeners: bound, so on loopback free ports
            lis["address"]["socket_address"].update(address="127.0.0.1", port_value=free_port())
    admin = free_port()
    boot["admin"]["address"]["socket_address"].update(address="127.0.0.1", port_value=admin)
    path = work / f"{setup}.json"
    path.write_text(json.dumps(boot))
    return {
        "path": path,
        "admin": admin,
        "services": len(cfg.transparent.destinations) if cfg.transparent else 0,
        "ir_clusters": len(cfg.clusters),
        "xds_kb": round(xds_bytes / 1024, 1),
        "bootstrap_kb": round(path.stat().st_size / 1024, 1),
    }


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:  # loopback only
        return str(r.read().decode())


def measure(p: dict[str, Any], settle: float, work: Path, tag: str) -> dict[str, float]:
    """Start Envoy on the set-up's config, wait until ready, idle ``settle`` s, read RSS and counts, stop it."""
    log = work / f"{tag}.log"
    argv = [str(envoy_path()), "-c", str(p["path"]), "--disable-hot-restart", "--concurrency", "1"]
    argv += ["--log-level", "warning", "--log-path", str(log), "--base-id", str(free_port())]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{tag}: Envoy exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if _get(p["admin"], "/ready").strip() == "LIVE":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{tag}: Envoy not ready in 180 s")
            time.sleep(0.2)
        time.sleep(settle)
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines() if ":" in line
        )
        anon = int(status["RssAnon"].split()[0]) / 1024  # private memory; RssFile: the binary's mapped pages
        file = int(status["RssFile"].split()[0]) / 1024
        stats = dict(
            line.split(": ", 1)
            for line in _get(
                p["admin"], "/stats?filter=^(cluster_manager.active_clusters|listener_manager.total_listeners_active)$"
            )
            .strip()
            .splitlines()
            if ": " in line
        )
        return {
            "rss_mb": rss,
            "rss_anon_mb": anon,
            "rss_file_mb": file,
            "clusters": float(stats.get("cluster_manager.active_clusters", "0")),
            "listeners": float(stats.get("listener_manager.total_listeners_active", "0")),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--namespaces", type=int, default=20)
    ap.add_argument("--declared", type=int, default=10, help="Services outside its namespace the probe declares")
    ap.add_argument("--narrow", type=int, default=10, help="Services the narrow declaration lists by name")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds Envoy idles before its RSS is read")
    ap.add_argument("--result", default="scope", help="bench/results/<name>.json")
    args = ap.parse_args()
    load_at_start = bench_results.load()
    with tempfile.TemporaryDirectory(prefix="meshwork-scope-bench-") as tmp:
        work = Path(tmp)
        prepared = {}
        for s in SETUPS:
            t0 = time.perf_counter()
            prepared[s] = prepare(args.services, args.namespaces, s, args.declared, args.narrow, work)
            print(
                f"{s}: translated in {time.perf_counter() - t0:.1f} s: {prepared[s]['services']} services", flush=True
            )
        floor_admin = free_port()
        floor_path = work / "floor.json"
        floor_path.write_text(
            json.dumps({"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": floor_admin}}}})
        )
        prepared["floor"] = {"path": floor_path, "admin": floor_admin, "services": 0}
        runs: dict[str, list[dict[str, float]]] = {s: [] for s in (*SETUPS, "floor")}
        for r in range(args.rounds):
            for s in (*SETUPS, "floor"):  # interleaved: every set-up sees the same machine load
                m = measure(prepared[s], args.settle, work, f"{s}-{r}")
                runs[s].append(m)
                print(f"round {r + 1} {s}: RSS {m['rss_mb']:.1f} MB, {m['clusters']:.0f} clusters", flush=True)
    setups = {}
    for s in SETUPS:
        p = {k: v for k, v in prepared[s].items() if k not in ("path", "admin")}
        rss = [m["rss_mb"] for m in runs[s]]
        setups[s] = {
            **p,
            "rss_mb": round(statistics.median(rss), 1),
            "rss_anon_mb": round(statistics.median(m["rss_anon_mb"] for m in runs[s]), 1),
            "rss_file_mb": round(statistics.median(m["rss_file_mb"] for m in runs[s]), 1),
            "rss_mb_runs": [round(x, 1) for x in rss],
            "envoy_clusters": runs[s][0]["clusters"],
            "envoy_listeners": runs[s][0]["listeners"],
        }
    floor = round(statistics.median(m["rss_mb"] for m in runs["floor"]), 1)
    full = setups["full"]["rss_mb"]
    full_anon = setups["full"]["rss_anon_mb"]
    for s in SETUPS:
        v = setups[s]
        v["rss_ratio_to_full"] = round(full / v["rss_mb"], 2)
        v["anon_ratio_to_full"] = round(full_anon / v["rss_anon_mb"], 2)
        v["rss_above_floor_mb"] = round(v["rss_mb"] - floor, 1)
        v["above_floor_ratio_to_full"] = round((full - floor) / max(v["rss_mb"] - floor, 0.1), 2)
    figures = {
        "floor_rss_mb": floor,
        "floor_rss_anon_mb": round(statistics.median(m["rss_anon_mb"] for m in runs["floor"]), 1),
        "floor_rss_mb_runs": [round(m["rss_mb"], 1) for m in runs["floor"]],
        "services": args.services,
        "namespaces": args.namespaces,
        "declared_elsewhere": args.declared,
        "narrow": args.narrow,
        "rounds": args.rounds,
        "settle_s": args.settle,
        "setups": setups,
    }
    notes = (
        "One transparent sidecar (ns-00/probe-1) of a synthetic mesh; static bootstrap of the same resources the "
        "xDS server sends; Envoy --concurrency 1; RSS after ready + settle; median of the rounds."
    )
    bench_results.write(args.result, figures, load_at_start, notes)
    for s in SETUPS:
        v = setups[s]
        print(
            f"{s:>9}: {v['services']:>5} services, {v['envoy_clusters']:.0f} clusters, xDS {v['xds_kb']:.0f} KB, "
            f"RSS {v['rss_mb']:.1f} MB ({v['rss_ratio_to_full']:.2f}x below full), anonymous {v['rss_anon_mb']:.1f} MB "
            f"({v['anon_ratio_to_full']:.2f}x), above the floor {v['rss_above_floor_mb']:.1f} MB "
            f"({v['above_floor_ratio_to_full']:.2f}x)"
        )
    print(f"    floor: Envoy with admin only: RSS {floor:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
