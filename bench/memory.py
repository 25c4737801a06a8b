"""Memory of the control plane's translation at mesh scale: one fresh process per size builds the whole mesh.

Each size runs in its own Python process (so no earlier size, and no other benchmark, is in its peak), which
imports Meshwork, builds the mesh's objects (the same synthetic mesh as ``bench/translate.py``: SERVICES services
with two versions each, ROUTES routes per TrafficPolicy, one retry policy per service, and an edge proxy that calls
every service), runs stage 1 + stage 2 + serialization for every proxy, and keeps every snapshot, as the control
plane holds them. Figures per size:

- ``peak_rss_mb``: the process's peak RSS (``ru_maxrss``), i.e. everything: the interpreter, imports, the input
  objects, the translation's caches and every proxy's snapshot with its bytes;
- ``setup_rss_mb``: RSS after imports, one-time class setup and the input objects, before translating;
- per proxy and per service: (peak - setup) divided by the proxies / services of the mesh.

    .venv/bin/python bench/memory.py                 # 1000x5, 5000x5, 10000x5
    .venv/bin/python bench/memory.py --sizes 10000x2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _results as bench_results

CHILD = """
import gc, json, resource, sys, time
sys.path.insert(0, "bench")
import translate as b

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

services, routes = int(sys.argv[1]), int(sys.argv[2])
b.pipeline(b.build_objects(3, 1))  # one-time class setup of the generated message types
objects = b.build_objects(services, routes)
gc.collect()
setup = rss_mb()
t0 = time.perf_counter()
count, snapshots = b.pipeline(objects)
took = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"proxies": len(snapshots), "resources": count, "setup_rss_mb": setup, "peak_rss_mb": peak,
                  "held_rss_mb": rss_mb(), "build_s": took}))
"""


def measure(services: int, routes: int) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(services), str(routes)],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    grown = (row["peak_rss_mb"] - row["setup_rss_mb"]) * 2**20
    row.update(
        services=services,
        routes=routes,
        bytes_per_proxy=grown / row["proxies"],
        bytes_per_service=grown / services,
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000x5,5000x5,10000x5", help="comma-separated SERVICESxROUTES")
    args = parser.parse_args()
    load_at_start = bench_results.load()
    figures: dict[str, Any] = {}
    for size in args.sizes.split(","):
        services, routes = (int(x) for x in size.split("x"))
        row = measure(services, routes)
        figures[size] = row
        print(
            f"{size}: {row['proxies']} proxies, {row['resources']} resources built in {row['build_s']:.1f} s; "
            f"peak RSS {row['peak_rss_mb']:.0f} MB (setup + objects {row['setup_rss_mb']:.0f} MB); "
            f"{row['bytes_per_proxy'] / 1024:.1f} KB per proxy, {row['bytes_per_service'] / 1024:.1f} KB per service",
            flush=True,
        )
    bench_results.write("memory", figures, load_at_start, notes="one fresh process per size; peak = ru_maxrss")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
