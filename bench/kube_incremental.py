"""Kubernetes mode, O(changed): one pod's readiness flipping, delivered as watch events to the real ``Store``.

A synthetic cluster of N Services in namespace ``bench`` (one TCP port each, appProtocol http), each with one
EndpointSlice of two ready mesh pods (explicit-mode sidecars), the pods spread over 8 Nodes with zones, and an
``edge`` pod calling every Service (its ``meshwork.io/upstreams`` annotation). No policies (the row is about the
core objects; policy edits have their own row). After the initial LIST (every object upserted, ``mark_synced``,
the first ``snapshot()`` and the first incremental ``build()``, not timed), each change flips the readiness of
one pod of the middle service: its Pod's Ready condition and its endpoint in the service's EndpointSlice, each a
new version of the object, upserted as the watch delivers them; then ``snapshot()`` and ``build()`` with the
control plane's ``Incremental`` state (stage 1 + stage 2 + bytes + provenance of every proxy rebuilt, no
pre-flight): everything a round does except the certificate step and the push. The figure is the median of
``--changes`` flips (wall and CPU, ``process_time``), with its parts (the events + ``snapshot()``, the build);
after each, the edge proxy's type versions (an O(its resources) hash, as a push computes) tell whether only EDS
changed, so each timed flip starts with caches the check went through. ``back to back``: as many flips again
without the check in between (a burst of pod churn, caches warm).

``--baseline-tree DIR`` runs the same side in a second process with ``DIR`` first on ``sys.path`` (another
version of the source tree, e.g. a clone of main), size by size, alternating with ours: both in one run.

    python bench/kube_incremental.py --sizes 1000,5000,10000,20000 --baseline-tree ../main-clone \\
        --baseline-label main@b30b40a
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cluster(services: int) -> dict[str, list[dict[str, Any]]]:
    def pod(name: str, ip: str, node: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "metadata": {
                "name": name,
                "namespace": "bench",
                "resourceVersion": "1",
                "labels": {"app": name.rsplit("-", 1)[0]},
                "annotations": {"meshwork.io/proxy": "injected", **(annotations or {})},
            },
            "spec": {"serviceAccountName": "app", "nodeName": f"node-{node}", "containers": [{"name": "app"}]},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
        }

    out: dict[str, list[dict[str, Any]]] = {"Node": [], "Service": [], "EndpointSlice": [], "Pod": []}
    for n in range(8):
        labels = {"topology.kubernetes.io/zone": f"zone-{n % 3}", "topology.kubernetes.io/region": "r1"}
        out["Node"].append({"metadata": {"name": f"node-{n}", "labels": labels, "resourceVersion": "1"}})
    for i in range(services):
        name = f"svc-{i}"
        out["Service"].append(
            {
                "metadata": {"name": name, "namespace": "bench", "resourceVersion": "1"},
                "spec": {
                    "clusterIP": f"10.{96 + i // 65536}.{i // 256 % 256}.{i % 256}",
                    "ports": [{"name": "http", "port": 80, "appProtocol": "http", "protocol": "TCP"}],
                },
            }
        )
        pods = [f"{name}-{v}" for v in range(2)]
        out["EndpointSlice"].append(
            {
                "metadata": {
                    "name": f"{name}-abc",
                    "namespace": "bench",
                    "resourceVersion": "1",
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [
                    {
                        "addresses": [f"10.{(2 * i + v) // 65536}.{(2 * i + v) // 256 % 256}.{(2 * i + v) % 256}"],
                        "conditions": {"ready": True},
                        "targetRef": {"kind": "Pod", "name": p, "namespace": "bench"},
                    }
                    for v, p in enumerate(pods)
                ],
            }
        )
        for v, p in enumerate(pods):
            j = 2 * i + v
            out["Pod"].append(pod(p, f"10.{1 + j // 65536}.{j // 256 % 256}.{j % 256}", j % 8))
    upstreams = ",".join(f"svc-{i}:{20000 + i}" for i in range(services))
    out["Pod"].append(pod("edge-0", "10.250.0.1", 0, {"meshwork.io/upstreams": upstreams}))
    return out


def side(services: int, changes: int) -> dict[str, Any]:
    """This tree's figures for one size (runs in its own process)."""
    import mesh_operator
    import xds_server
    from mesh_operator.control.build import Incremental, build
    from mesh_operator.kube.store import Store
    from xds_server.snapshot import ENDPOINT

    tree = Path(str(mesh_operator.__file__)).resolve().parents[2]
    assert Path(str(xds_server.__file__)).resolve().is_relative_to(tree)
    objects = _cluster(services)
    store = Store()
    t0 = time.perf_counter()
    for kind in ("Node", "Service", "EndpointSlice", "Pod"):
        for body in objects[kind]:
            store.upsert(kind, body)
    store.mark_synced()
    inc = Incremental()
    first = build(store.snapshot().state, {}, {}, None, inc)
    t_first = time.perf_counter() - t0
    proxies = len(first.snapshots)
    del first

    key = f"svc-{services // 2}"
    slice_body = next(b for b in objects["EndpointSlice"] if b["metadata"]["name"] == f"{key}-abc")
    pod_body = next(b for b in objects["Pod"] if b["metadata"]["name"] == f"{key}-1")
    wall: list[float] = []
    cpu: list[float] = []
    events_s: list[float] = []
    build_s: list[float] = []
    burst: list[float] = []
    paths: set[str] = set()
    eds_only = True
    for n in range(2 * changes):
        checked = n < changes  # then as many again back to back, without the check in between
        ready = n % 2 == 1  # unready, ready again, ...
        version = str(n + 2)
        new_pod = copy.deepcopy(pod_body)
        new_pod["metadata"]["resourceVersion"] = version
        new_pod["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
        new_slice = copy.deepcopy(slice_body)
        new_slice["metadata"]["resourceVersion"] = version
        new_slice["endpoints"][1]["conditions"]["ready"] = ready
        before = inc.by_node["bench/edge-0"]
        t0, c0 = time.perf_counter(), time.process_time()
        store.upsert("Pod", new_pod)
        store.upsert("EndpointSlice", new_slice)
        state = store.snapshot().state
        t1 = time.perf_counter()
        build(state, {}, {}, None, inc)
        t2 = time.perf_counter()
        paths.add(inc.translator.last_path)
        if not checked:
            burst.append(t2 - t0)
            continue
        wall.append(t2 - t0)
        cpu.append(time.process_time() - c0)
        events_s.append(t1 - t0)
        build_s.append(t2 - t1)
        after = inc.by_node["bench/edge-0"]
        eds_only &= {t for t in after.resources if after.type_version(t) != before.type_version(t)} == {ENDPOINT}
    return {
        "services": services,
        "proxies": proxies,
        "first_snapshot_and_build_s": t_first,
        "readiness_flip_s": statistics.median(wall),
        "readiness_flip_all_s": wall,
        "readiness_flip_cpu_s": statistics.median(cpu),
        "readiness_flip_cpu_min_s": min(cpu),
        "readiness_flip_back_to_back_s": statistics.median(burst),
        "readiness_flip_back_to_back_all_s": burst,
        "events_and_snapshot_s": statistics.median(events_s),
        "build_s": statistics.median(build_s),
        "translator_paths": sorted(paths),
        "rebuilt_proxies": sorted(inc.translator.changed),
        "edge_only_eds": eds_only,
        "peak_rss_mb": _rss_mb(),
    }


def _run_side(tree: Path, services: int, changes: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "operator")])}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--side", str(services), "--changes", str(changes)],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _line(label: str, r: dict[str, Any]) -> str:
    return (
        f"  {label}: one readiness flip {r['readiness_flip_s'] * 1000:.1f} ms wall / "
        f"{r['readiness_flip_cpu_s'] * 1000:.1f} ms CPU (events + snapshot {r['events_and_snapshot_s'] * 1000:.1f} "
        f"ms, build {r['build_s'] * 1000:.1f} ms; back to back {r['readiness_flip_back_to_back_s'] * 1000:.2f} ms); "
        f"{r['proxies']} proxies, rebuilt {len(r['rebuilt_proxies'])}, "
        f"path {'/'.join(r['translator_paths'])}, edge only EDS: {r['edge_only_eds']}; first snapshot + build "
        f"{r['first_snapshot_and_build_s']:.1f} s; peak RSS {r['peak_rss_mb']:.0f} MB"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,5000,10000,20000", help="services, comma-separated")
    p.add_argument("--changes", type=int, default=7, help="readiness flips per size (median)")
    p.add_argument("--baseline-tree", type=Path, help="another source tree to time side by side (e.g. main's)")
    p.add_argument("--baseline-label", help="its name in the results (e.g. main@b30b40a)")
    p.add_argument("--result", default="kube-incremental", help="bench/results/NAME.json")
    p.add_argument("--side", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side is not None:
        print(json.dumps(side(args.side, args.changes)), flush=True)
        return 0
    sys.path[:0] = [str(ROOT / "bench")]
    import _results as bench_results

    load_at_start = bench_results.load()
    label = args.baseline_label or (args.baseline_tree.name if args.baseline_tree else None)
    figures: dict[str, Any] = {}
    for services in (int(s) for s in args.sizes.split(",")):
        print(f"\n{services} services", flush=True)
        row = {"ours": _run_side(ROOT, services, args.changes)}
        print(_line("ours", row["ours"]), flush=True)
        if args.baseline_tree is not None:
            row["baseline"] = _run_side(args.baseline_tree.resolve(), services, args.changes)
            row["baseline_label"] = label
            print(_line(str(label), row["baseline"]), flush=True)
        figures[str(services)] = row
    bench_results.write(
        "kube-incremental",
        figures,
        load_at_start,
        notes="one pod's readiness flip (Pod + EndpointSlice watch events) -> Store.snapshot() -> build() with "
        "the Incremental state (no certificates, no push, no pre-flight); median of --changes; each size one "
        "fresh process per tree, ours then the baseline; no policies",
        name=args.result,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
