"""Another source tree's side of ``bench/translate.py --baseline-tree DIR``: the same synthetic edge proxy built
and serialized by *that tree's* translation and encoder (e.g. ``git archive main | tar -x -C DIR``), in its own
process so that both versions' modules can be loaded at once. Interleaved with the caller's own repeats: one
line on stdin = one repeat (clear every cache, build the messages from the IR, time ``encode`` of every top-level
resource, CPU time); one JSON line out per repeat. Runs with the caller's venv (same dependencies)."""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

TREE = Path(sys.argv[1]).resolve()
sys.path[:0] = [str(TREE / "bench")]  # that tree's bench/translate.py puts that tree first on sys.path

import translate as tree_bench  # noqa: E402


def main() -> None:
    services, routes = (int(x) for x in sys.argv[2].split("x"))
    encode = tree_bench.encode
    objects = tree_bench.build_objects(services, routes)
    cfg = tree_bench.translate_mesh(tree_bench.state_from_objects(objects), only={"bench/edge"}).proxies["bench/edge"]
    tree_bench.pipeline(tree_bench.build_objects(3, 1))  # one-time class setup, as the caller does
    import xds_server  # after that tree's bench put it first on sys.path

    for module in (tree_bench, xds_server):
        assert Path(str(module.__file__)).resolve().is_relative_to(TREE), module
    print(json.dumps({"ready": True}), flush=True)
    for _ in sys.stdin:
        tree_bench.clear_caches()
        t0 = time.process_time()
        r = tree_bench.translate_proxy(cfg)
        build = time.process_time() - t0
        messages = [*r.listeners, *r.route_configs, *r.clusters, *r.cluster_load_assignments]
        gc.disable()
        try:
            t1 = time.process_time()
            total = sum(len(encode(m)) for m in messages)
            elapsed = time.process_time() - t1
        finally:
            gc.enable()
        print(json.dumps({"serialize_s": elapsed, "build_s": build, "bytes": total}), flush=True)


if __name__ == "__main__":
    main()
