"""The O(changed) figures of ``bench/translate.py --only incremental``: full build vs incremental builds.

For one mesh of ``bench/translate.py`` (every service: v1 + v2 instances, a TrafficPolicy, a RetryPolicy; an
``edge`` client calling every service) it times, in one process:

* **full**: ``build()`` of the whole mesh (stage 1 + stage 2 + bytes + resource provenance of every proxy, no
  pre-flight), caches cleared: what every debounced round cost before;
* **full, warm**: the same again with warm memo caches (the previous per-round cost for a one-policy change);
* **policy change**: one TrafficPolicy edited (its request timeout), the ``MeshState`` updated (the policy tuple
  with that position replaced — a ``LayeredSeq`` carrying the delta where the tree has one, else a new tuple;
  services and workloads unchanged, as the Kubernetes store delivers them) and ``build()`` with the incremental
  state: everything a round does except the certificate step and the push;
* **endpoint change**: one service loses / regains its v2 instance (pod churn; the services map layered on the
  previous one where the tree has ``Layered`` maps, else a new dict), same path;

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
from xds_server.snapshot import ENDPOINT
from xds_server.translate import clear_caches

try:  # the delta API (a tree before it: the change is handed as whole new values)
    from xds_server.layered import Layered, LayeredSeq
except ImportError:  # pragma: no cover - only when timing an older tree
    Layered = LayeredSeq = None  # type: ignore[assignment,misc]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _plane() -> Any:
    """A control plane (not started: no sockets) with a throwaway CA, or None for a tree without one."""
    import atexit
    import shutil
    import tempfile
    from datetime import timedelta
    from pathlib import Path

    try:
        from mesh_operator.control.certs import CertificateManager
        from mesh_operator.control.plane import ControlPlane
        from xds_server.ca import store
    except ImportError:  # pragma: no cover - an older tree
        return None
    ca_dir = tempfile.mkdtemp(prefix="bench-ca-")
    atexit.register(shutil.rmtree, ca_dir, True)
    issuer = store.load_or_create(Path(ca_dir) / "ca", "cluster.local")
    return ControlPlane(CertificateManager(issuer, leaf_ttl=timedelta(hours=24)))


def _publish_text(cpu: dict[str, list[float]]) -> str:
    if not cpu["policy"]:
        return ""
    p, e = statistics.median(cpu["policy"]), statistics.median(cpu["endpoint"])
    return f"; then publishing: policy change {p * 1000:.1f} ms CPU, endpoint change {e * 1000:.1f} ms CPU"


def incremental_row(
    objects: list[Any], services: int, routes: int, changes: int, full_builds: bool = True
) -> dict[str, Any]:
    """``full_builds=False`` (``--skip-full``) leaves out the two full builds (minutes at 20k services on a loaded
    machine): the row then has no share of a full build."""
    import translate as bench  # the mesh builders of bench/translate.py

    state = state_from_objects(objects)
    gc.collect()
    clear_caches()
    t_full = t_full_warm = None
    if full_builds:
        t0 = time.perf_counter()
        full = build(state, {}, {}, None)
        t_full = time.perf_counter() - t0
        del full
        t0 = time.perf_counter()
        build(state, {}, {}, None)
        t_full_warm = time.perf_counter() - t0
        print(
            f"  full build, {len(state.workloads)} proxies: cold {t_full:.2f} s, warm {t_full_warm:.2f} s; "
            f"peak RSS {_rss_mb():.0f} MB",
            flush=True,
        )

    plane = _plane()  # publishes each build: every proxy's snapshot + secrets into the xDS cache, status maps
    inc = plane._incremental if plane is not None else Incremental()
    t0, c0 = time.perf_counter(), time.process_time()
    first = build(state, {}, {}, None, inc)
    t_first, c_first = time.perf_counter() - t0, time.process_time() - c0
    resources = sum(len(by) for s in first.snapshots.values() for by in s.resources.values())
    publish_cpu: dict[str, list[float]] = {"policy": [], "endpoint": []}

    def publish(built: Any, kind: str | None) -> None:
        if plane is None:
            return
        c0 = time.process_time()
        plane._publish(built, state)
        if kind is not None:
            publish_cpu[kind].append(time.process_time() - c0)

    publish(first, None)  # (issues every identity's certificate: not timed)
    del first

    index = {id(p): i for i, p in enumerate(state.policies)}
    tp0 = next(p for p in state.policies if p.kind == "TrafficPolicy" and p.metadata.name == "svc-0")
    slot = index[id(tp0)]
    policy_times: list[float] = []
    policy_cpu: list[float] = []
    for n in range(changes):
        edited = bench.traffic_policy(0, routes, generation=n + 2)  # timeout 1s -> 2s -> 3s ...
        policies = list(state.policies) if LayeredSeq is None else None
        t0, c0 = time.perf_counter(), time.process_time()
        if LayeredSeq is None:  # a tree without the delta API: a new tuple, as a source made it there
            assert policies is not None
            policies[slot] = edited
            state = replace(state, policies=tuple(policies))
        else:  # the source hands the new tuple with its delta: one position replaced
            state = replace(state, policies=LayeredSeq.over(state.policies, {slot: edited}))
        built = build(state, {}, {}, None, inc)
        policy_times.append(time.perf_counter() - t0)
        policy_cpu.append(time.process_time() - c0)
        publish(built, "policy")
        assert inc.translator.last_path == "incremental"
    rebuilt_policy = sorted(inc.translator.changed)
    patched_policy = sorted(inc.translator.patched)

    key = f"bench/svc-{services // 2}"
    svc = state.services[key]
    endpoint_times: list[float] = []
    endpoint_cpu: list[float] = []
    eds_only = True
    for n in range(changes):
        before = inc.by_node["bench/edge"]
        t0, c0 = time.perf_counter(), time.process_time()
        instances = svc.instances[:1] if n % 2 == 0 else svc.instances
        if LayeredSeq is None:  # a new dict, as a source made it there
            state = replace(state, services={**state.services, key: replace(svc, instances=instances)})
        else:  # the services map layered on the previous one (the source's delta)
            state = replace(state, services=Layered.over(state.services, {key: replace(svc, instances=instances)}))
        built = build(state, {}, {}, None, inc)
        endpoint_times.append(time.perf_counter() - t0)
        endpoint_cpu.append(time.process_time() - c0)
        publish(built, "endpoint")
        after = inc.by_node["bench/edge"]
        eds_only &= {t for t in after.resources if after.type_version(t) != before.type_version(t)} == {ENDPOINT}
    rebuilt_endpoint = sorted(inc.translator.changed)
    patched_endpoint = sorted(inc.translator.patched)

    p_med, e_med = statistics.median(policy_times), statistics.median(endpoint_times)
    pc_med, ec_med = statistics.median(policy_cpu), statistics.median(endpoint_cpu)
    share = (
        f"{p_med / t_full * 100:.2f} % of the cold full build, {p_med / t_full_warm * 100:.2f} % of the warm one"
        if t_full is not None and t_full_warm is not None
        else f"{pc_med / c_first * 100:.3f} % of the first incremental build's CPU"
    )
    print(
        f"  incremental: first build {t_first:.2f} s ({c_first:.1f} s CPU), {resources} resources; one policy change "
        f"{p_med * 1000:.1f} ms wall / {pc_med * 1000:.1f} ms CPU (min {min(policy_cpu) * 1000:.1f}; {share}); "
        f"one endpoint change {e_med * 1000:.1f} ms wall / {ec_med * 1000:.1f} ms CPU (min "
        f"{min(endpoint_cpu) * 1000:.1f}; edge: only EDS changed: {eds_only}); rebuilt {len(rebuilt_policy)} "
        f"(patched {len(patched_policy)}) / {len(rebuilt_endpoint)} (patched {len(patched_endpoint)}) proxies; "
        f"peak RSS {_rss_mb():.0f} MB{_publish_text(publish_cpu)}",
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
        "incremental_first_build_cpu_s": c_first,
        "policy_change_s": p_med,
        "policy_change_all_s": policy_times,
        "policy_change_cpu_s": pc_med,
        "policy_change_cpu_min_s": min(policy_cpu),
        "policy_change_cpu_all_s": policy_cpu,
        "policy_change_share_of_full": p_med / t_full if t_full is not None else None,
        "policy_change_cpu_share_of_first_build": pc_med / c_first,
        "endpoint_change_s": e_med,
        "endpoint_change_all_s": endpoint_times,
        "endpoint_change_cpu_s": ec_med,
        "endpoint_change_cpu_min_s": min(endpoint_cpu),
        "endpoint_change_cpu_all_s": endpoint_cpu,
        "endpoint_change_only_eds": eds_only,
        "patched_on_policy_change": patched_policy,
        "patched_on_endpoint_change": patched_endpoint,
        "rebuilt_on_policy_change": rebuilt_policy,
        "rebuilt_on_endpoint_change": rebuilt_endpoint,
        # the control plane's publish step after each change's build (certificates looked up, snapshots with
        # secrets into the xDS cache, status maps): with the build, everything a round does but the push
        "policy_publish_cpu_s": statistics.median(publish_cpu["policy"]) if publish_cpu["policy"] else None,
        "endpoint_publish_cpu_s": statistics.median(publish_cpu["endpoint"]) if publish_cpu["endpoint"] else None,
        "peak_rss_mb": _rss_mb(),
    }
