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
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "operator")]

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


def upb_side(objects: list[Any]) -> dict[str, Any] | None:
    """Build + serialize the edge proxy's resources with upb, in the upb venv."""
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
    proc = subprocess.run(
        [str(UPB_PYTHON), str(ROOT / "bench" / "_upb_side.py")],
        input=json.dumps(docs),
        capture_output=True,
        text=True,
        check=True,
    )
    out: dict[str, Any] = json.loads(proc.stdout)
    out["resources"] = len(docs)
    # Ours, for exactly the same resources: build (stage 2 from IR) + serialize, caches cleared.
    clear_caches()
    t0 = time.perf_counter()
    ours = translate_proxy(cfg)
    t1 = time.perf_counter()
    messages = [*ours.listeners, *ours.route_configs, *ours.clusters, *ours.cluster_load_assignments]
    gc.disable()  # as the server's own serialization path does
    try:
        t2 = time.perf_counter()
        for m in messages:
            encode(m)
        t3 = time.perf_counter()
    finally:
        gc.enable()
    out["ours_build_s"], out["ours_serialize_s"] = t1 - t0, t3 - t2
    return out


def _plain(doc: Any) -> Any:
    """Top-level resources are not Any-wrapped for ParseDict: drop their '@type' (nested Anys keep theirs)."""
    return {k: v for k, v in doc.items() if k != "@type"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000x5,5000x5,10000x2", help="comma-separated SERVICESxROUTES")
    args = parser.parse_args()
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",")]
    pipeline(build_objects(3, 1))  # one-time class setup of the generated message types, not part of any figure
    for services, routes in sizes:
        objects = build_objects(services, routes)
        edge = {"bench/edge"}
        gc.collect()
        clear_caches()
        t_edge, (n_edge, _) = timed(pipeline, objects, edge)
        clear_caches()
        t_mesh, (n_mesh, _) = timed(pipeline, objects)
        print(f"\n{services} services x {routes} routes")
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
        upb = upb_side(objects)
        if upb is None:
            print("  upb side skipped: run `make bench` (creates .venv-upb with xds-protos)")
            continue
        print(
            f"  edge proxy vs upb, {upb['resources']} resources: serialize ours {upb['ours_serialize_s'] * 1000:.0f} ms"
            f" / upb {upb['serialize_s'] * 1000:.0f} ms = {upb['ours_serialize_s'] / upb['serialize_s']:.1f}x; "
            f"build ours (typed constructors) {upb['ours_build_s'] * 1000:.0f} ms / upb ({upb['impl']}, from dicts) "
            f"{upb['build_s'] * 1000:.0f} ms",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
