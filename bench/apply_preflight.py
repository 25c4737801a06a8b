"""The control plane's share of bench/apply.py without the apiserver: the pre-flight check's two paths side by side.

The mesh of bench/apply.py (one client proxy calling ``--services`` services) gets its TrafficPolicies in rounds
of ``--round`` (as a burst of creates reaches the debounced control plane), each round one
``control.build.build`` with the incremental translator, as the operator runs it. Measured per variant, in one run
(each with fresh caches, the variants alternating ``--repeat`` times):

* ``json``: the pre-flight check as before (the proxy's new resources converted to proto-JSON, one Envoy run);
* ``binary``: the bootstrap spliced from the snapshot's bytes (``xds_server.preflight_wire``), one Envoy run;
* ``split``: the same in two self-contained parts validated by two Envoy runs in parallel (the default now).

Figures per variant (sums over the rounds, the initial translation of the mesh without policies excluded): wall
time, the process's CPU, Envoy's CPU (``RUSAGE_CHILDREN``: the validation processes), pre-flight seconds and the
part spent waiting for Envoy. The machine is shared: CPU seconds are the steadier figure.

    .venv/bin/python bench/apply_preflight.py [--services 1000 --round 100 --repeat 2 --variants binary,split]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import _results as bench_results  # noqa: E402

from mesh_operator.api import TrafficPolicy  # noqa: E402
from mesh_operator.control.build import Incremental, build  # noqa: E402
from mesh_operator.translate.state import MeshState, ServiceInfo, UpstreamInfo, WorkloadInfo, default_mesh  # noqa: E402
from xds_server.preflight import Preflight  # noqa: E402
from xds_server.translate import clear_caches  # noqa: E402


def _mesh(n: int) -> MeshState:
    services = {f"b/svc-{i}": ServiceInfo(f"svc-{i}", "b", 80, "http", ()) for i in range(n)}
    ups = tuple(UpstreamInfo(f"b/svc-{i}", 20000 + i) for i in range(n))
    return MeshState(default_mesh(), services, {"b/client": WorkloadInfo("b", "client", "default", upstreams=ups)}, ())


def _policy(i: int) -> TrafficPolicy:
    """bench/apply.py's policy i."""
    return TrafficPolicy.model_validate(
        {
            "apiVersion": "meshwork.io/v1alpha1",
            "kind": "TrafficPolicy",
            "metadata": {"name": f"tp-{i}", "namespace": "b", "generation": 1},
            "spec": {"targetRef": {"name": f"svc-{i}"}, "timeouts": {"request": f"{1 + i % 9}s"}},
        }
    )


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(variant: str, n: int, per_round: int, policies: list[TrafficPolicy]) -> dict[str, Any]:
    clear_caches()
    preflight = Preflight(
        binary=variant != "json",
        split_min=0 if variant == "binary" else 64,
        idle=lambda: variant == "split",  # (split: whatever the load)
    )
    inc = Incremental()
    state = _mesh(n)
    last_good: dict[Any, Any] = {}
    rejected: dict[Any, Any] = {}
    b = build(state, last_good, rejected, preflight, inc)
    rounds = []
    for start in range(0, n, per_round):
        state = replace(state, policies=tuple(policies[: start + per_round]))
        pf0, env0 = preflight.stats.seconds, preflight.stats.envoy_seconds
        wall0, cpu0, kids0 = time.perf_counter(), time.process_time(), _children_cpu()
        b = build(state, last_good, rejected, preflight, inc)
        rounds.append(
            {
                "wall_s": time.perf_counter() - wall0,
                "cpu_s": time.process_time() - cpu0,
                "envoy_cpu_s": _children_cpu() - kids0,
                "preflight_s": preflight.stats.seconds - pf0,
                "envoy_wait_s": preflight.stats.envoy_seconds - env0,
            }
        )
        assert not b.failed and all(o.accepted for o in b.translation.outcomes.values()), b.failed
        last_good = {**last_good, **b.translation.in_force}
        rejected = dict(b.rejected)
    total = {k: round(sum(r[k] for r in rounds), 2) for k in rounds[0]}
    return {
        **total,
        "rounds": len(rounds),
        "envoy_runs": preflight.stats.envoy_runs,
        "split_checks": preflight.stats.split_checks,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--round", type=int, default=100, help="policies per translation round")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--result", default="apply-preflight")
    parser.add_argument("--variants", default="json,binary,split", help="comma-separated: json, binary, split")
    args = parser.parse_args()
    variants = args.variants.split(",")
    if not variants or set(variants) - {"json", "binary", "split"}:
        parser.error(f"--variants: choose among json, binary, split (got {args.variants!r})")
    load_at_start = bench_results.load()
    policies = [_policy(i) for i in range(args.services)]
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for i in range(args.repeat):
        for variant in variants if i % 2 == 0 else variants[::-1]:
            got = measure(variant, args.services, args.round, policies)
            print(variant, json.dumps(got), flush=True)
            runs[variant].append(got)
    best = {v: min(rs, key=lambda r: r["cpu_s"] + r["envoy_cpu_s"]) for v, rs in runs.items()}
    figures = {"services": args.services, "per_round": args.round, "best": best, "runs": runs}
    print(json.dumps(best, indent=2))
    bench_results.write(args.result, figures, load_at_start, notes="sums over rounds; best = least CPU of the runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
