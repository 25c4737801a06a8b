"""What the pre-flight check (real Envoy, ``--mode validate``) costs, side by side with the same build without it.

For meshes of N services (2 instances each, a TrafficPolicy of 5 routes and a RetryPolicy each, one client calling
every service), measured in one run:
  * cold: the first build of the whole mesh (every proxy is new to Envoy) — translation + serialization + checks;
  * one policy changed: the next build after one TrafficPolicy's new generation (only what changed is checked).
Each figure is wall time of ``control.build.build`` (everything a control plane does before publishing), with
the number of Envoy runs and of proxies checked.

    .venv/bin/python bench/preflight.py [--sizes 100,1000]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from translate import build_objects, traffic_policy

from mesh_operator.control.build import build
from mesh_operator.translate import state_from_objects
from xds_server.preflight import Preflight
from xds_server.translate import clear_caches


def measure(services: int) -> dict[str, Any]:
    objects = build_objects(services, 5)
    changed = [traffic_policy(0, 5, 2) if i == 1 else o for i, o in enumerate(objects)]
    out: dict[str, Any] = {"services": services, "proxies": 2 * services + 1}
    for label, preflight in (("without", None), ("with", Preflight())):
        clear_caches()
        state = state_from_objects(objects)
        t0 = time.perf_counter()
        built = build(state, {}, {}, preflight)
        cold = time.perf_counter() - t0
        runs_cold = preflight.stats.envoy_runs if preflight else 0
        checked_cold = preflight.stats.proxies_checked if preflight else 0
        t0 = time.perf_counter()
        again = build(state_from_objects(changed), built.translation.in_force, {}, preflight)
        change = time.perf_counter() - t0
        assert not again.failed and not built.failed
        out[label] = {
            "cold_s": round(cold, 3),
            "cold_preflight_s": round(built.preflight_seconds, 3),
            "cold_envoy_runs": runs_cold,
            "cold_proxies_checked": checked_cold,
            "change_s": round(change, 3),
            "change_preflight_s": round(again.preflight_seconds, 3),
            "change_envoy_runs": (preflight.stats.envoy_runs - runs_cold) if preflight else 0,
            "change_proxies_checked": (preflight.stats.proxies_checked - checked_cold) if preflight else 0,
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000")
    args = parser.parse_args()
    results = [measure(int(n)) for n in args.sizes.split(",")]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    doc = {
        "bench": "preflight",
        "commit": commit,
        "machine": platform.processor() or platform.machine(),
        "results": results,
    }
    print(json.dumps(doc, indent=1))
    print()
    print(
        "| services (proxies) | cold build without / with pre-flight | Envoy runs "
        "| one policy changed without / with | Envoy runs, proxies checked |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        w, p = r["without"], r["with"]
        print(
            f"| {r['services']} ({r['proxies']}) | {w['cold_s']} s / {p['cold_s']} s | {p['cold_envoy_runs']} "
            f"| {w['change_s'] * 1000:.0f} ms / {p['change_s'] * 1000:.0f} ms "
            f"| {p['change_envoy_runs']}, {p['change_proxies_checked']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
