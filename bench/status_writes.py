"""Status writes per second on the test apiserver with nothing else running: the ceiling of bench/apply.py's tail.

Setup: etcd + kube-apiserver (``TestControlPlane``), the CRDs, ``--policies`` TrafficPolicies created by 8 client
threads (their rate is reported too: the creates of bench/apply.py). Timed: one merge-PATCH of the status
subresource of every policy, through the operator's own client (``mesh_operator.kube.rest.Rest``, one pooled
aiohttp session) at each ``--concurrency`` in turn (each a new status, so every write changes the object), as
``StatusWriter`` sends them. No operator, no watch, no poll.

    .venv/bin/python bench/status_writes.py [--policies 600 --concurrency 16,64,16,64,4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import _results as bench_results  # noqa: E402
from apply import GROUP, VERSION, install_crds  # noqa: E402

from mesh_operator.kube.rest import Rest, connection  # noqa: E402
from mesh_operator.testing import TestControlPlane  # noqa: E402


async def _writes(conn: Any, ns: str, n: int, concurrency: int, generation: int) -> float:
    rest = Rest(conn, limit=concurrency)
    sem = asyncio.Semaphore(concurrency)
    condition = {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "bench"}
    status = {"observedGeneration": generation, "conditions": [{**condition, "observedGeneration": generation}]}

    async def one(i: int) -> None:
        async with sem:
            path = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/trafficpolicies/tp-{i}/status"
            await rest.merge_patch(path, {"status": status})

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.monotonic() - started
    await rest.close()
    return n / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policies", type=int, default=600)
    parser.add_argument("--concurrency", default="16,64,16,64,4")
    parser.add_argument("--result", default="status-writes")
    args = parser.parse_args()
    load_at_start = bench_results.load()
    n = args.policies
    with TestControlPlane() as plane:
        api = plane.api_client()
        core: Any = client.CoreV1Api(api)
        custom: Any = client.CustomObjectsApi(api)
        install_crds(api)
        ns = f"bench-{uuid.uuid4().hex[:6]}"
        core.create_namespace({"metadata": {"name": ns}})

        def create(i: int) -> None:
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "TrafficPolicy",
                "metadata": {"name": f"tp-{i}"},
                "spec": {"targetRef": {"name": f"svc-{i}"}},
            }
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, "trafficpolicies", body)

        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(n)))
        creates_per_s = n / (time.monotonic() - started)
        conn = connection(str(plane.kubeconfig_path))
        rates = []
        for generation, c in enumerate((int(x) for x in args.concurrency.split(",")), 1):
            rate = asyncio.run(_writes(conn, ns, n, c, generation))
            rates.append({"concurrency": c, "writes_per_s": round(rate, 1)})
            print(json.dumps(rates[-1]), flush=True)
    figures = {"policies": n, "creates_per_s": round(creates_per_s, 1), "status_writes": rates}
    print(json.dumps(figures, indent=2))
    bench_results.write(args.result, figures, load_at_start, notes="one status PATCH per policy, nothing else")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
