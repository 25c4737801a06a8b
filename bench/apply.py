"""Apply benchmark: N TrafficPolicies created on a real kube-apiserver -> time until every one is Accepted=True and
Programmed=True for its generation; status writes per second; operator RSS.

Setup (not timed): etcd + kube-apiserver (``TestControlPlane``), the CRDs, one namespace with ``--policies``
Services and one client Pod whose sidecar calls all of them (so every policy lands in one proxy's config and can be
Programmed), and the operator as its own process (``python -m mesh_operator``, leader election on, one replica).
No Envoy is connected: Programmed means "in the snapshot of N proxies"; receipts stay 0/1. The operator has
finished its initial LIST and first translation before the clock starts.

Timed: from the first create request to the moment a LIST of the namespace's TrafficPolicies shows every one with
``observedGeneration == generation`` and ``Accepted=True``, ``Programmed=True``. It includes the creates themselves
(``--workers`` client threads; their share is reported separately), kopf's watch delivery, the store, debounced
translation of the whole mesh, and the status writes (each a PATCH of the status subresource). The LIST poll runs
every 0.2 s, so the figure is up to 0.2 s late. Status writes/s = the operator's successful writes / the timed
span. RSS = the operator's peak resident set, sampled every 0.2 s (psutil), and at the end. ``states_applied``:
MeshStates the operator handed to the control plane; ``translations_published``: translations it published.

    .venv/bin/python bench/apply.py                # 1,000 policies
    .venv/bin/python bench/apply.py --policies 200
    .venv/bin/python bench/apply.py --max-debounce 3   # the operator translates at most every 3 s under a burst
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import yaml
from kubernetes import client

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import _results as bench_results  # noqa: E402

from mesh_operator.testing import TestControlPlane  # noqa: E402
from mesh_operator.testing.kubemesh import OperatorProcess  # noqa: E402

GROUP, VERSION = "meshwork.io", "v1alpha1"


def install_crds(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    for path in sorted((REPO / "crds").glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        ext.create_custom_resource_definition(body)
    deadline = time.monotonic() + 30
    for path in sorted((REPO / "crds").glob("*.yaml")):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        while time.monotonic() < deadline:
            conds = {c.type: c.status for c in (ext.read_custom_resource_definition(name).status.conditions or [])}
            if conds.get("Established") == "True":
                break
            time.sleep(0.1)


def done(item: dict[str, Any]) -> bool:
    status = item.get("status") or {}
    conds = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return (
        status.get("observedGeneration") == item["metadata"]["generation"]
        and conds.get("Accepted") == "True"
        and conds.get("Programmed") == "True"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--max-debounce", type=float, default=1.0, help="the operator's --max-debounce")
    parser.add_argument("--result", default="apply", help="write bench/results/RESULT.json")
    parser.add_argument("--log", type=Path, help="keep a copy of the operator's log here")
    args = parser.parse_args()
    n = args.policies
    load_at_start = bench_results.load()

    with tempfile.TemporaryDirectory(prefix="meshwork-bench-apply-") as tmp, TestControlPlane() as plane:
        work = Path(tmp)
        api = plane.api_client()
        core: Any = client.CoreV1Api(api)
        custom: Any = client.CustomObjectsApi(api)
        install_crds(api)
        ns = f"bench-{uuid.uuid4().hex[:6]}"
        for name in (ns, "meshwork-system"):
            core.create_namespace({"metadata": {"name": name}})
        for i in range(n):
            # Headless: the test apiserver's service CIDR has room for 254 ClusterIPs only.
            body = {"metadata": {"name": f"svc-{i}"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}
            core.create_namespaced_service(ns, body)
        upstreams = ",".join(f"svc-{i}:{20000 + i}" for i in range(n))
        core.create_namespaced_pod(
            ns,
            {
                "metadata": {
                    "name": "client",
                    "annotations": {"meshwork.io/proxy": "injected", "meshwork.io/upstreams": upstreams},
                },
                "spec": {"containers": [{"name": "app", "image": "x"}]},
            },
        )
        core.patch_namespaced_pod_status("client", ns, {"status": {"podIP": "127.0.0.1"}})
        op = OperatorProcess(
            plane.kubeconfig_path, work / "ca", work / "operator.log", trust_domain="cluster.local",
            extra_args=["--max-debounce", str(args.max_debounce)],
        )  # fmt: skip
        op.start(timeout=120)
        proc = psutil.Process(op.proc.pid if op.proc else 0)
        rss_peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal rss_peak
            while not stop.is_set():
                rss_peak = max(rss_peak, proc.memory_info().rss)
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        writes_before = op.admin("/debug/kubez")["status_writes"]
        rss_before = proc.memory_info().rss

        def create(i: int) -> None:
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "TrafficPolicy",
                "metadata": {"name": f"tp-{i}", "namespace": ns},
                "spec": {"targetRef": {"name": f"svc-{i}"}, "timeouts": {"request": f"{1 + i % 9}s"}},
            }
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, "trafficpolicies", body)

        started = time.monotonic()
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(create, range(n)))
        created = time.monotonic() - started
        finished = None
        count = 0
        while time.monotonic() - started < args.timeout:
            items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "trafficpolicies")["items"]
            count = sum(1 for item in items if done(item))
            if count == n:
                finished = time.monotonic() - started
                break
            time.sleep(0.2)
        stop.set()
        sampler.join()
        kubez = op.admin("/debug/kubez")
        writes = kubez["status_writes"] - writes_before
        rss_end = proc.memory_info().rss
        op.stop()
        if args.log is not None:
            args.log.write_bytes((work / "operator.log").read_bytes())
        result = {
            "policies": n,
            "all_accepted_and_programmed_s": round(finished, 2) if finished else None,
            "done": count,
            "creates_s": round(created, 2),
            "status_writes": writes,
            "status_writes_per_s": round(writes / finished, 1) if finished else None,
            "states_applied": kubez["translations"],
            "translations_published": kubez["plane_generation"],
            "operator_rss_mib": {
                "before": round(rss_before / 2**20, 1),
                "peak": round(rss_peak / 2**20, 1),
                "end": round(rss_end / 2**20, 1),
            },
        }
        print(json.dumps(result, indent=2))
        bench_results.write(args.result, result, load_at_start, notes="first create -> all Accepted+Programmed")
        return 0 if finished else 1


if __name__ == "__main__":
    raise SystemExit(main())
