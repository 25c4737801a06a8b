"""Translation benchmark: policies + inventory -> IR -> Envoy resources -> bytes, at mesh scale.

For each mesh size (services × routes per service) it builds a synthetic mesh: every service has a v1 and a v2
instance and a TrafficPolicy with ``routes`` path rules splitting 90/10, plus a RetryPolicy; one ``edge`` client
calls every service (the largest snapshot: one listener, one route config with all routes, three clusters and
three endpoint sets per service). It measures, in one process:

* full: stage 1 for the whole mesh (every proxy's IR) + stage 2 and serialization of every proxy's snapshot;
* incremental: one policy changed on the 5k mesh, translated and serialized again (caches warm);

and, side by side in the same run, the same resources built and serialized with upb protobuf (``xds-protos``,
in its own venv ``.venv-upb``: ``make bench`` creates it) as a ratio. Figures: µs per resource and peak RSS.

    make bench                       # all sizes
    .venv/bin/python bench/translate.py --sizes 1000x5
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import resource
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

from mesh_operator.api import Inventory, RetryPolicy, TrafficPolicy  # noqa: E402
from mesh_operator.translate import state_from_objects, translate_mesh  # noqa: E402
from xds_server.serialize import encode  # noqa: E402
from xds_server.translate import clear_caches, snapshot_of_proxy, to_proto_json, translate_proxy  # noqa: E402

UPB_PYTHON = ROOT / ".venv-upb" / "bin" / "python"


def build_objects(services: int, routes: int, generation: int = 1) -> list[Any]:
    svc_docs = []
    for i in range(services):
        svc_docs.append(
            {
                "name": f"svc-{i}",
                "namespace": "bench",
                "ports": [{"port": 80}],
                "instances": [
                    {
                        "name": f"svc-{i}-v1",
                        "port": 8080,
                        "address": f"10.{i // 250}.{i % 250}.1",
                        "labels": {"version": "v1"},
                        "serviceAccount": f"sa-{i}",
                    },
                    {
                        "name": f"svc-{i}-v2",
                        "port": 8080,
                        "address": f"10.{i // 250}.{i % 250}.2",
                        "labels": {"version": "v2"},
                        "serviceAccount": f"sa-{i}",
                    },
                ],
            }
        )
    inventory = Inventory.model_validate(
        {
            "apiVersion": "meshwork.io/v1alpha1",
            "kind": "Inventory",
            "metadata": {"name": "bench"},
            "spec": {
                "services": svc_docs,
                "clients": [
                    {
                        "name": "edge",
                        "namespace": "bench",
                        "sidecar": {
                            "upstreams": [{"service": f"svc-{i}", "localPort": 10000 + i} for i in range(services)]
                        },
                    }
                ],
            },
        }
    )
    objects: list[Any] = [inventory]
    for i in range(services):
        objects.append(traffic_policy(i, routes, generation if i == 0 else 1))
        objects.append(
            RetryPolicy.model_validate(
                {
                    "apiVersion": "meshwork.io/v1alpha1",
                    "kind": "RetryPolicy",
                    "metadata": {"name": f"svc-{i}", "namespace": "bench"},
                    "spec": {"targetRef": {"name": f"svc-{i}"}, "attempts": 2, "retryOn": ["5xx", "reset"]},
                }
            )
        )
    return objects


def traffic_policy(i: int, routes: int, generation: int) -> TrafficPolicy:
    return TrafficPolicy.model_validate(
        {
            "apiVersion": "meshwork.io/v1alpha1",
            "kind": "TrafficPolicy",
            "metadata": {"name": f"svc-{i}", "namespace": "bench", "generation": generation},
            "spec": {
                "targetRef": {"name": f"svc-{i}"},
                "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}],
                "rules": [
                    {
                        "name": f"r{r}",
                        "matches": [{"path": {"type": "PathPrefix", "value": f"/api/r{r}"}}],
                        "backends": [{"subset": "v1", "weight": 90}, {"subset": "v2", "weight": 10}],
                        "timeouts": {"request": f"{generation}s"},
                    }
                    for r in range(routes)
                ],
            },
        }
    )


def pipeline(objects: list[Any], only: set[str] | None = None) -> tuple[int, dict[str, Any]]:
    """Stage 1 + stage 2 + serialization, as the control plane runs it. Returns (resources, snapshots)."""
    translated = translate_mesh(state_from_objects(objects), only=only)
    snapshots = {node: snapshot_of_proxy(cfg) for node, cfg in translated.proxies.items()}
    count = sum(len(by_name) for s in snapshots.values() for by_name in s.resources.values())
    return count, snapshots


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load_baseline(rev: str) -> Any:
    """``xds_server/serialize.py`` as of git revision ``rev``, loaded as a separate module (before/after in one run)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:xds_server/serialize.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="meshwork-bench-")) / f"serialize_{rev}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"serialize_baseline_{rev}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _tree_side(tree: str, size: str) -> subprocess.Popen[str]:
    """``bench/_tree_side.py``: another source tree's translation and encoder, one repeat per line asked."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "_tree_side.py"), tree, size],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and json.loads(proc.stdout.readline()) == {"ready": True}
    return proc


def _side_repeat(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """One timed repeat of a side process (``_tree_side.py`` or ``_upb_side.py``): one line out, one JSON line in."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out: dict[str, Any] = json.loads(proc.stdout.readline())
    return out


def _tree_label(tree: str) -> str:
    """``<name>@<commit>`` of an exported tree (``git archive`` writes the commit into the archive's comment,
    which ``tar`` drops), so the caller names it: ``--baseline-tree DIR --baseline-label main@0d2e389``."""
    return Path(tree).name


def upb_side(
    objects: list[Any],
    repeats: int = 1,
    baseline: str | None = None,
    baseline_tree: str | None = None,
    baseline_label: str | None = None,
    size: str = "",
) -> dict[str, Any] | None:
    """Serialize the edge proxy's resources with ours and with upb (in the upb venv), ``repeats`` times each.

    Ours: each repeat clears every cache (resource bytes, sub-message memos) and builds the messages afresh from
    the IR (stage 2), then times ``encode`` of every top-level resource, so a memo only helps within one
    snapshot, as in a full translation. upb: the same resources parsed once from their proto-JSON, then
    ``SerializeToString`` of every one, timed per repeat in its own process, interleaved with ours repeat by
    repeat (so both sides meet the same moments of the shared machine), the cyclic GC paused on every side while
    timing (as the server's serialization path does). Times are CPU time of the process (``process_time``,
    so waiting for a core on the shared machine is not counted on either side); the minimum over repeats is the
    figure, the median is reported too. ``baseline`` (a git revision) also times that revision's encoder,
    interleaved with ours on the same fresh messages. ``baseline_tree`` (a directory holding another version of
    the whole source tree, e.g. main's) times that tree's translation *and* encoder on the same synthetic mesh in
    a second process, one repeat interleaved with each of ours (for changes beyond the encoder, such as shared
    sub-messages in the translation). Every repeat on every side starts with every cache cleared: the figures
    are cold (nothing survives between repeats; sharing and memos only help within one snapshot).
    """
    if not UPB_PYTHON.exists():
        return None
    cfg = translate_mesh(state_from_objects(objects), only={"bench/edge"}).proxies["bench/edge"]
    res = translate_proxy(cfg)
    docs = [
        (k, _plain(to_proto_json(m)))
        for k, ms in (
            ("listeners", res.listeners),
            ("routes", res.route_configs),
            ("clusters", res.clusters),
            ("endpoints", res.cluster_load_assignments),
        )
        for m in ms
    ]
    upb = subprocess.Popen(
        [str(UPB_PYTHON), str(ROOT / "bench" / "_upb_side.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert upb.stdin is not None and upb.stdout is not None
    upb.stdin.write(json.dumps(docs) + "\n")
    upb.stdin.flush()
    out: dict[str, Any] = json.loads(upb.stdout.readline())
    assert out.pop("ready") is True
    out["resources"] = len(docs)
    upb_runs: list[dict[str, Any]] = []
    old = _load_baseline(baseline) if baseline else None
    tree = _tree_side(baseline_tree, size) if baseline_tree else None
    tree_runs: list[dict[str, Any]] = []
    ours: list[float] = []
    base: list[float] = []
    builds: list[float] = []

    def fresh() -> list[Any]:
        clear_caches()
        if old is not None:
            old.clear_caches()
            getattr(old, "_WRAPPED", {}).clear()
        t0 = time.process_time()
        r = translate_proxy(cfg)
        builds.append(time.process_time() - t0)
        return [*r.listeners, *r.route_configs, *r.clusters, *r.cluster_load_assignments]

    def run(encoder: Any, messages: list[Any]) -> tuple[float, int]:
        gc.disable()  # as the server's own serialization path does
        try:
            t0 = time.process_time()
            total = sum(len(encoder(m)) for m in messages)
            return time.process_time() - t0, total
        finally:
            gc.enable()

    for _ in range(repeats):
        t, out["ours_bytes"] = run(encode, fresh())
        ours.append(t)
        if old is not None:
            t, out["baseline_bytes"] = run(old.encode, fresh())
            base.append(t)
        if tree is not None:
            tree_runs.append(_side_repeat(tree))
        upb_runs.append(_side_repeat(upb))
    upb.stdin.close()
    upb.wait(timeout=60)
    upb_times = [r["serialize_s"] for r in upb_runs]
    out["serialize_s"], out["upb_serialize_median_s"] = min(upb_times), statistics.median(upb_times)
    out["bytes"] = upb_runs[-1]["bytes"]
    if tree is not None:
        assert tree.stdin is not None
        tree.stdin.close()
        tree.wait(timeout=60)
        times = [r["serialize_s"] for r in tree_runs]
        out["baseline"] = baseline_label or _tree_label(baseline_tree or "")
        out["baseline_serialize_s"], out["baseline_serialize_median_s"] = min(times), statistics.median(times)
        out["baseline_build_s"] = min(r["build_s"] for r in tree_runs)
        out["baseline_bytes"] = tree_runs[-1]["bytes"]
    out["ours_build_s"] = min(builds)
    out["ours_serialize_s"], out["ours_serialize_median_s"] = min(ours), statistics.median(ours)
    out["cold"] = True  # every repeat of every side started with every cache cleared
    if old is not None:
        out["baseline"] = baseline
        out["baseline_serialize_s"], out["baseline_serialize_median_s"] = min(base), statistics.median(base)
    return out


def _plain(doc: Any) -> Any:
    """Top-level resources are not Any-wrapped for ParseDict: drop their '@type' (nested Anys keep theirs)."""
    return {k: v for k, v in doc.items() if k != "@type"}


def _serialize_line(upb: dict[str, Any]) -> str:
    ratio = upb["ours_serialize_s"] / upb["serialize_s"]
    line = (
        f"  edge proxy vs upb, {upb['resources']} resources ({upb['bytes']} bytes upb / {upb['ours_bytes']} ours), "
        f"min of {upb['repeats']}: serialize ours {upb['ours_serialize_s'] * 1000:.1f} ms / upb "
        f"{upb['serialize_s'] * 1000:.1f} ms = {ratio:.1f}x"
    )
    if "baseline" in upb:
        line += (
            f"; baseline {upb['baseline']} {upb['baseline_serialize_s'] * 1000:.1f} ms = "
            f"{upb['baseline_serialize_s'] / upb['serialize_s']:.1f}x"
        )
        if "baseline_build_s" in upb:
            line += f" (its build {upb['baseline_build_s'] * 1000:.0f} ms)"
    return line + (
        f"; build ours (typed constructors) {upb['ours_build_s'] * 1000:.0f} ms / upb ({upb['impl']}, from dicts) "
        f"{upb['build_s'] * 1000:.0f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000x5,5000x5,10000x2", help="comma-separated SERVICESxROUTES")
    parser.add_argument(
        "--only",
        choices=["all", "serialize", "incremental"],
        default="all",
        help="serialize: only the edge proxy vs upb; incremental: full vs O(changed) builds side by side",
    )
    parser.add_argument("--changes", type=int, default=7, help="incremental: changes of each kind (median)")
    parser.add_argument("--skip-full", action="store_true", help="incremental: leave out the full builds")
    parser.add_argument("--result", default="incremental", help="incremental: bench/results/NAME.json")
    parser.add_argument("--repeats", type=int, default=5, help="serialization repeats (minimum reported)")
    parser.add_argument("--baseline", metavar="GIT_REV", help="also time xds_server/serialize.py of this revision")
    parser.add_argument(
        "--baseline-tree",
        metavar="DIR",
        help="also time another source tree's translation + encoder (e.g. `git archive main | tar -x -C DIR`)",
    )
    parser.add_argument("--baseline-label", help="name of --baseline-tree in the results (e.g. main@0d2e389)")
    args = parser.parse_args()
    load_at_start = bench_results.load()
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",")]
    pipeline(build_objects(3, 1))  # one-time class setup of the generated message types, not part of any figure
    if args.only == "incremental":
        return _incremental_main(sizes, args.changes, load_at_start, not args.skip_full, args.result)
    figures: dict[str, Any] = {}
    for services, routes in sizes:
        objects = build_objects(services, routes)
        row: dict[str, Any] = {"services": services, "routes": routes}
        figures[f"{services}x{routes}"] = row
        print(f"\n{services} services x {routes} routes")
        if args.only == "all":
            row.update(_translation_row(objects, services, routes))
        upb = upb_side(
            objects, args.repeats, args.baseline, args.baseline_tree, args.baseline_label, f"{services}x{routes}"
        )
        if upb is None:
            print("  upb side skipped: run `make bench` (creates .venv-upb with xds-protos)")
            continue
        upb["repeats"] = args.repeats
        row["serialize"] = upb
        print(_serialize_line(upb), flush=True)
    bench_results.write(
        "translate" if args.only == "all" else "serialize",
        figures,
        load_at_start,
        notes="serialize: min over repeats, ours and upb on the same edge-proxy resources, same run",
    )
    return 0


def _translation_row(objects: list[Any], services: int, routes: int) -> dict[str, Any]:
    edge = {"bench/edge"}
    gc.collect()
    clear_caches()
    t_edge, (n_edge, _) = timed(pipeline, objects, edge)
    clear_caches()
    t_mesh, (n_mesh, _) = timed(pipeline, objects)
    print(
        f"  edge proxy full snapshot (calls every service): {n_edge} resources in {t_edge:.2f} s "
        f"({t_edge / n_edge * 1e6:.0f} µs/resource)"
    )
    print(
        f"  whole mesh, {services * 2 + 1} proxies: {n_mesh} resources in {t_mesh:.2f} s "
        f"({t_mesh / n_mesh * 1e6:.0f} µs/resource); peak RSS {peak_rss_mb():.0f} MB",
        flush=True,
    )
    changed = list(objects)
    changed[1] = traffic_policy(0, routes, generation=2)  # one TrafficPolicy edited (timeout 1s -> 2s)
    affected = {"bench/edge", "bench/svc-0-v1", "bench/svc-0-v2"}
    t_state, state = timed(state_from_objects, changed)
    t_stage1, translated = timed(translate_mesh, state, only=affected)
    t_stage2, _ = timed(lambda t=translated: [snapshot_of_proxy(cfg) for cfg in t.proxies.values()])
    t_inc = t_state + t_stage1 + t_stage2
    t_inc_mesh, _ = timed(pipeline, list(objects))
    print(
        f"  one TrafficPolicy changed (caches warm): affected proxies {t_inc * 1000:.0f} ms (inventory "
        f"{t_state * 1000:.0f} + stage 1 {t_stage1 * 1000:.0f} + stage 2 and bytes {t_stage2 * 1000:.0f}); "
        f"whole mesh re-run {t_inc_mesh * 1000:.0f} ms",
        flush=True,
    )
    return {
        "edge_resources": n_edge,
        "edge_full_s": t_edge,
        "mesh_proxies": services * 2 + 1,
        "mesh_resources": n_mesh,
        "mesh_full_s": t_mesh,
        "peak_rss_mb": peak_rss_mb(),
        "one_policy_change_s": t_inc,
        "one_policy_change_parts_s": {"inventory": t_state, "stage1": t_stage1, "stage2_and_bytes": t_stage2},
        "mesh_rerun_warm_s": t_inc_mesh,
    }


def _incremental_main(
    sizes: list[tuple[int, ...]], changes: int, load_at_start: dict[str, Any], full_builds: bool, result: str
) -> int:
    from incremental_bench import incremental_row

    figures: dict[str, Any] = {}
    for services, routes in sizes:
        print(f"\n{services} services x {routes} routes", flush=True)
        objects = build_objects(services, routes)
        figures[f"{services}x{routes}"] = incremental_row(objects, services, routes, changes, full_builds)
    bench_results.write(
        "incremental",
        figures,
        load_at_start,
        notes="full: cold build() of the whole mesh; changes: MeshState update + build() with the incremental "
        "state (stage 1 + stage 2 + bytes + provenance of every proxy), median of --changes (CPU: process_time; "
        "min also given); same run",
        name=result,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
