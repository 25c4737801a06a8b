"""The O(changed) figures of ``bench/translate.py --only incremental``: full build vs incremental builds.

For one mesh of ``bench/translate.py`` (every service: v1 + v2 instances, a TrafficPolicy, a RetryPolicy; an
``edge`` client calling every service) it times, in one process:

* **full**: ``build()`` of the whole mesh (stage 1 + stage 2 + bytes + resource provenance of every proxy, no
  pre-flight), caches cleared: what every debounced round cost before;
* **full, warm**: the same again with warm memo caches (the previous per-round cost for a one-policy change);
* **policy change**: one TrafficPolicy edited (its request timeout), the ``MeshState`` updated (the policy tuple;
  services and workloads unchanged, as the Kubernetes store delivers them) and ``build()`` with the incremental
  state: everything a round does except the certificate step and the push;
* **endpoint change**: one service loses / regains its v2 instance (pod churn), same path;

each the median of ``changes`` alternating edits, plus what the translator rebuilt and the peak RSS.
"""

from __future__ import annotations

import gc
import resource
import statistics
import time
from dataclasses import replace
from typing import Any

from mesh_operator.control.build import Incremental, build
from mesh_operator.translate import state_from_objects
from xds_server.translate import clear_caches


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def incremental_row(objects: list[Any], services: int, routes: int, changes: int) -> dict[str, Any]:
    import translate as bench  # the mesh builders of bench/translate.py

    state = state_from_objects(objects)
    gc.collect()
    clear_caches()
    t0 = time.perf_counter()
    full = build(state, {}, {}, None)
    t_full = time.perf_counter() - t0
    resources = sum(len(by) for s in full.snapshots.values() for by in s.resources.values())
    del full
    t0 = time.perf_counter()
    build(state, {}, {}, None)
    t_full_warm = time.perf_counter() - t0
    print(
        f"  full build, {len(state.workloads)} proxies, {resources} resources: cold {t_full:.2f} s, "
        f"warm {t_full_warm:.2f} s; peak RSS {_rss_mb():.0f} MB",
        flush=True,
    )

    inc = Incremental()
    t0 = time.perf_counter()
    build(state, {}, {}, None, inc)
    t_first = time.perf_counter() - t0

    index = {id(p): i for i, p in enumerate(state.policies)}
    tp0 = next(p for p in state.policies if p.kind == "TrafficPolicy" and p.metadata.name == "svc-0")
    slot = index[id(tp0)]
    policy_times: list[float] = []
    for n in range(changes):
        edited = bench.traffic_policy(0, routes, generation=n + 2)  # timeout 1s -> 2s -> 3s ...
        policies = list(state.policies)
        t0 = time.perf_counter()
        policies[slot] = edited
        state = replace(state, policies=tuple(policies))
        built = build(state, {}, {}, None, inc)
        policy_times.append(time.perf_counter() - t0)
        assert built.translation.outcomes[next(iter(built.translation.outcomes))] is not None
    rebuilt_policy = sorted(inc.translator.changed)

    key = f"bench/svc-{services // 2}"
    svc = state.services[key]
    endpoint_times: list[float] = []
    for n in range(changes):
        t0 = time.perf_counter()
        instances = svc.instances[:1] if n % 2 == 0 else svc.instances
        state = replace(state, services={**state.services, key: replace(svc, instances=instances)})
        build(state, {}, {}, None, inc)
        endpoint_times.append(time.perf_counter() - t0)
    rebuilt_endpoint = sorted(inc.translator.changed)

    p_med, e_med = statistics.median(policy_times), statistics.median(endpoint_times)
    print(
        f"  incremental: first build {t_first:.2f} s; one policy change {p_med * 1000:.1f} ms "
        f"(min {min(policy_times) * 1000:.1f}, {p_med / t_full * 100:.2f} % of the cold full build, "
        f"{p_med / t_full_warm * 100:.2f} % of the warm one); one endpoint change {e_med * 1000:.1f} ms "
        f"(min {min(endpoint_times) * 1000:.1f}); rebuilt {len(rebuilt_policy)} / {len(rebuilt_endpoint)} proxies; "
        f"peak RSS {_rss_mb():.0f} MB",
        flush=True,
    )
    return {
        "services": services,
        "routes": routes,
        "proxies": len(state.workloads),
        "resources": resources,
        "full_build_s": t_full,
        "full_build_warm_s": t_full_warm,
        "incremental_first_build_s": t_first,
        "policy_change_s": p_med,
        "policy_change_all_s": policy_times,
        "policy_change_share_of_full": p_med / t_full,
        "endpoint_change_s": e_med,
        "endpoint_change_all_s": endpoint_times,
        "rebuilt_on_policy_change": rebuilt_policy,
        "rebuilt_on_endpoint_change": rebuilt_endpoint,
        "peak_rss_mb": _rss_mb(),
    }
